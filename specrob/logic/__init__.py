"""Core IR -> batched torch: terms, differentiable logics, compiled properties."""
from specrob.logic.compiled import CompiledProperty, ConstraintLoss
from specrob.logic.formulas import evaluate, holds
from specrob.logic.logics import LOGICS, Logic, make_logic

__all__ = ["CompiledProperty", "ConstraintLoss", "evaluate", "holds", "LOGICS",
           "Logic", "make_logic"]
