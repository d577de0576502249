"""A ``model.name`` that names a local folder which does not exist yet, and the recipe that writes it.

``runs/tiny-sft/model`` is the output of ``configs/tiny/sft.yaml``; asking transformers for it
before that run gives a hub-id error that sends the user the wrong way. A name looks local when
it is absolute, starts with ``.`` or ``~``, or has more than the one ``/`` of a hub id
(``org/name``). The recipe is found among the YAML files under ``./configs`` whose
``output_dir`` + ``/model`` is that folder.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from zoo.errors import ConfigError


def looks_local(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _recipe_writing(folder: Path, configs: Path) -> Path | None:
    for path in sorted(configs.rglob("*.yaml")) if configs.is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue  # a broken recipe says nothing about this folder
        output = data.get("output_dir") if isinstance(data, dict) else None
        if isinstance(output, str) and (Path(output).expanduser() / "model").resolve() == folder.resolve():
            return path
    return None


def check_local_model(name: str, key: str = "model.name", configs: Path | None = None, *,
                      only_with_recipe: bool = False) -> None:
    """A :class:`ConfigError` naming the recipe to run first when ``name`` is a missing local folder.

    ``only_with_recipe``: say nothing when no recipe writes it (the caller has its own message).
    """
    if not looks_local(name) or Path(name).expanduser().exists():
        return
    recipe = _recipe_writing(Path(name).expanduser(), configs or Path.cwd() / "configs")
    if recipe is None and only_with_recipe:
        return
    if recipe is None:
        raise ConfigError(f"{key} = {name!r}: {name} does not exist (a local path: it is not a hub id). "
                          f"Check the path, or train the model it names first.")
    try:
        shown = recipe.relative_to(Path.cwd())
    except ValueError:
        shown = recipe
    raise ConfigError(f"{key} = {name!r}: {name} does not exist yet; run {shown} first "
                      f"(`zoo train {shown}` writes it).")
