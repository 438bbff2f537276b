"""Estimators: constraint security and accuracy, Q/H/G scores, margins, local Lipschitz."""
