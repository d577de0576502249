"""Loss math shared by algorithm plugins: pure functions of tensors, one module per loss family.

Plugins import these from ``zoo.losses`` (a front module, like ``zoo``): the formula lives here
once, and an algorithm plugin, built-in or third-party, only chooses its inputs and arguments.
"""
from zoo.losses.kto import kl_reference_point, kto_loss, weight_ratio_advice
from zoo.losses.orpo import log_odds, orpo_loss

__all__ = ["kl_reference_point", "kto_loss", "log_odds", "orpo_loss", "weight_ratio_advice"]
