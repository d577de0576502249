"""How per-token losses become the per-example losses of :class:`zoo.LossOutput`.

Every normaliser returns ``[N]`` per-example losses whose *batch mean* is the intended loss, so
the loop's ``losses.mean()`` and minibatching work unchanged. With ``sums_i = Σ_t ℓ_i,t`` over the
response tokens of example i and ``|y_i|`` its token count:

    sequence_mean:  L_i = sums_i / |y_i|           mean of per-response means (GRPO)
    token_mean:     L_i = sums_i / mean_j |y_j|    batch mean = Σ_i sums_i / Σ_i |y_i| (DAPO, PPO, SFT)
    constant:       L_i = sums_i / C               a fixed normaliser (Dr. GRPO's C = L_max; C = 1 sums)

A token mean is global only over what one ``losses.mean()`` sees. :func:`aggregate` therefore
also returns the token count behind a token mean, which the loop carries in
``LossOutput.tokens`` to turn per-device token means into one mean over every device's tokens.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

Aggregation = Literal["sequence_mean", "token_mean", "constant"]


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Scalar mean of ``values`` over the True entries of ``mask`` (0 when there are none)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_sums(token_values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``[N, T]`` token values → ``[N]`` sums over the masked tokens and the ``[N]`` token counts."""
    weights = mask.to(token_values.dtype)
    return (token_values * weights).sum(-1), weights.sum(-1)


def token_mean(sums: Tensor, lengths: Tensor) -> Tensor:
    """``sums_i / mean_j |y_j|``: the batch mean of the result is ``Σ sums / Σ |y|``."""
    return sums / lengths.float().mean().clamp(min=1)


def sequence_mean(sums: Tensor, lengths: Tensor) -> Tensor:
    """``sums_i / |y_i|`` (an empty response counts one token, so it contributes 0)."""
    return sums / lengths.clamp(min=1)


def aggregate(token_values: Tensor, mask: Tensor, how: Aggregation, *,
              constant: float | None = None) -> tuple[Tensor, Tensor | None]:
    """Per-example losses from ``[N, T]`` token losses (module docstring), and the token count
    ``Σ |y_i|`` when ``how`` is a token mean (None otherwise: nothing to make global)."""
    sums, lengths = masked_sums(token_values, mask)
    if how == "sequence_mean":
        return sequence_mean(sums, lengths), None
    if how == "token_mean":
        return token_mean(sums, lengths), lengths.sum().detach()
    if how == "constant":
        if constant is None or constant <= 0:
            raise ValueError("the constant aggregation needs a positive normaliser")
        return sums / constant, None
    raise ValueError(f"unknown aggregation {how!r}; expected sequence_mean, token_mean or constant")
