"""Loading policies, references and tokenizers.

``model.name`` is ``tiny`` (the built-in recipe in :mod:`zoo.tiny`), a Hugging Face hub id, a
local directory, a ``.gguf`` file or ``smollm2`` (the packaged SmolLM2-135M-Instruct GGUF); GGUF
files are converted once into a cached model directory (:mod:`zoo.gguf`). ``trust_remote_code``
is passed through only when the config sets it.
"""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel,
                          PreTrainedTokenizerBase)

from zoo.config import ModelConfig
from zoo.errors import ConfigError
from zoo.gguf import resolve as _resolve_gguf
from zoo.local_model import check_local_model
from zoo.tiny import tiny_model, tiny_tokenizer

TINY = "tiny"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def _hub_kwargs(config: ModelConfig) -> dict:
    kwargs = {"trust_remote_code": config.trust_remote_code}
    if config.revision:
        kwargs["revision"] = config.revision
    return kwargs


def _attention_kwargs(config: ModelConfig) -> dict:
    return {"attn_implementation": config.attn_implementation} if config.attn_implementation else {}


def _attention_error(name: str | None, exc: Exception) -> ConfigError:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ConfigError(f"model.attn_implementation = {name!r}: transformers cannot use it here ({first_line}). "
                       f"Leave it unset for sdpa, or use 'eager'.")


def _wrap_load_error(name: str, exc: Exception) -> ConfigError:
    where = "local directory" if Path(name).exists() else "hub id or local path"
    return ConfigError(f"model.name = {name!r}: could not load it as a {where} ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}). Use 'tiny' for the built-in model.")


def _pickle_error(name: str) -> ConfigError:
    return ConfigError(f"model.name = {name!r}: its weights are a pickle file (e.g. pytorch_model.bin) holding "
                       f"objects other than tensors, so it is not loaded: unpickling it could run code. Use a copy "
                       f"of the model saved as safetensors (model.safetensors).")


def resolve(name: str, key: str = "model.name") -> str:
    """``name`` as ``from_pretrained`` takes it; a missing local folder names the recipe that writes it."""
    check_local_model(name, key)
    return _resolve_gguf(name, key)


def load_tokenizer(config: ModelConfig, name: str | None = None, key: str = "model.name") -> PreTrainedTokenizerBase:
    name = name or config.name
    if name == TINY:
        return tiny_tokenizer()
    name = resolve(name, key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **_hub_kwargs(config))
    except (OSError, ValueError, RuntimeError, SafetensorError, EOFError) as exc:  # incl. truncated weights
        raise _wrap_load_error(name, exc) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"{key} = {name!r}: its tokenizer has neither a pad token nor an EOS token, so batches "
                              f"cannot be padded nor responses ended. Add one to its tokenizer_config.json (e.g. "
                              f"\"eos_token\": \"</s>\", a token of its vocabulary).")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(config: ModelConfig, tokenizer: PreTrainedTokenizerBase,
                   name: str | None = None, key: str = "model.name") -> PreTrainedModel:
    name = name or config.name
    if name == TINY:
        t = config.tiny
        model = tiny_model(tokenizer, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                           num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                           num_key_value_heads=t.num_key_value_heads,
                           max_position_embeddings=t.max_position_embeddings, seed=t.seed)
        if config.dtype not in ("float32", "auto"):
            model = model.to(DTYPES[config.dtype])
        if config.attn_implementation:
            try:
                model.set_attn_implementation(config.attn_implementation)
            except (ImportError, ValueError) as exc:
                raise _attention_error(config.attn_implementation, exc) from None
        return model
    name = resolve(name, key)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=DTYPES[config.dtype], **_attention_kwargs(config),
                                                     **_hub_kwargs(config))
    except ImportError as exc:
        raise _attention_error(config.attn_implementation, exc) from None
    except pickle.UnpicklingError:  # torch.load(weights_only=True) refused it; never advise otherwise
        raise _pickle_error(name) from None
    except (OSError, ValueError, RuntimeError, SafetensorError, EOFError) as exc:  # incl. truncated weights
        if config.attn_implementation and "attn" in str(exc).lower():
            raise _attention_error(config.attn_implementation, exc) from None
        raise _wrap_load_error(name, exc) from None
    return model


def load_scalar_model(config: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A one-output ``AutoModelForSequenceClassification`` (a reward model) on ``model.name``'s backbone.

    For ``tiny`` and for a causal-LM checkpoint the backbone weights are kept and the scalar head
    is new; a saved reward model loads whole.
    """
    if config.name == TINY:
        causal = load_causal_lm(config, tokenizer)
        causal.config.num_labels = 1
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(config.tiny.seed)
        try:
            model = AutoModelForSequenceClassification.from_config(causal.config)
        finally:
            torch.random.set_rng_state(generator_state)
        # The causal LM and the classifier name their backbone alike; only the heads differ.
        model.load_state_dict(causal.state_dict(), strict=False)
        model.to(causal.dtype)
    else:
        name = resolve(config.name)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                name, num_labels=1, dtype=DTYPES[config.dtype], **_attention_kwargs(config),
                **_hub_kwargs(config))
        except pickle.UnpicklingError:
            raise _pickle_error(config.name) from None
        except (OSError, ValueError, RuntimeError, SafetensorError, EOFError) as exc:  # incl. truncated weights
            raise _wrap_load_error(config.name, exc) from None
    if model.config.pad_token_id is None:  # the classifier pools at the last non-pad token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout probability in ``model`` to 0 (``nn.Dropout`` modules and the attention
    probability dropout transformers keeps as a float ``attention_dropout``); returns how many."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p:
            module.p = 0.0
            changed += 1
        if isinstance(getattr(module, "attention_dropout", None), float) and module.attention_dropout:
            module.attention_dropout = 0.0
            changed += 1
    return changed


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def load_reference(config: ModelConfig, policy: PreTrainedModel,
                   tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The frozen reference: ``model.reference`` if set, else a copy of the starting policy."""
    if config.reference is None:
        return frozen(copy.deepcopy(policy))
    return frozen(load_causal_lm(config, tokenizer, name=config.reference, key="model.reference"))
