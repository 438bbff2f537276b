"""Sound bound propagation through the network IR: lower bounds of linear specifications
C f(x) + d over the input set B_p(x0, eps) ∩ [low, high]^n, batched over centres.

Four methods, each at least as tight as the one before (every result is intersected with the
previous one, so this holds by construction):

- ``"ibp"``: interval bound propagation (Gowal et al. 2018) from the box enclosing ball ∩ box.
- ``"crown"``: linear relaxations propagated backwards through the graph (Zhang et al. 2018),
  with every intermediate pre-activation bounded by CROWN itself (back-substituted to the
  input) and intersected with its interval bound; the linear function reached at the input is
  concretised on the ball (dual norm) and on the enclosing box, keeping the larger bound.
- ``"alpha-crown"``: CROWN whose lower ReLU slopes are optimised per specification row by
  projected gradient ascent (Xu et al. 2021), keeping the best bound of all iterations. The
  intermediate bounds are CROWN's (only the final specification's slopes are optimised).
- ``"alpha-crown-all"``: alpha-CROWN on every layer (Xu et al. 2021, "Fast and Complete"):
  the intermediate bounds are computed layer by layer, each neuron's with slopes optimised for
  it over the (already optimised) bounds of the layers before it, keeping each neuron's best
  bound of all iterations and intersecting with CROWN's; the final rows are then optimised on
  these bounds, and the result is the better of this and alpha-crown's.

Supported nodes: IBP handles every IR node but LogSoftmax. CROWN relaxes Affine, Elementwise,
Add, Conv, BatchNorm, Reshape and AveragePool exactly (they are linear); Relu, LeakyRelu and
Clip by their ReLU decompositions; Sigmoid and Tanh by CROWN's tangent and chord lines (Zhang
et al. 2018, section 3.3); MaxPool by DeepPoly's (Singh et al. 2019: the input with the
largest lower bound below, the window's largest upper bound above, or that input exactly when
it dominates the window). Every intermediate bound is intersected with its interval bound.
Softmax raises NotImplementedError (bound the logits before it instead; see `unsupported`).
Only ReLU terms have optimisable slopes.

Bounds are for the network in exact arithmetic on its float64 weights; every computed bound is
widened by SAFETY * (1 + |bound|) to cover float64 rounding (not a rigorous floating-point
analysis, but ample for networks of ordinary magnitude). A float32 execution of the same
network can differ from exact arithmetic by about 1e-6 relative: that is not covered.
"""

from specrob.bounds.common import DTYPE, METHODS, SAFETY
from specrob.bounds.crown import (Crown, adam_ascent, ibp_bounds, interval_bounds,
                                               relaxations)
from specrob.bounds.network import CompiledNetwork, compile_network
from specrob.bounds.region import BoundRegion, input_region
from specrob.bounds.spec import (interval_spec, output_bounds, spec_bounds, supports,
                                 unsupported)

__all__ = ["DTYPE", "METHODS", "SAFETY", "BoundRegion", "CompiledNetwork", "Crown",
           "adam_ascent", "compile_network", "ibp_bounds", "input_region", "interval_bounds",
           "interval_spec",
           "output_bounds", "relaxations", "spec_bounds", "supports", "unsupported"]
