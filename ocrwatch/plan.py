"""From a validated config to a plan: the engine, rules and folders of every inbox.

:class:`~ocrwatch.rules.Rules` lives in :mod:`ocrwatch.rules`; it is named here too,
where callers have always found it.

The config says what the user wrote; the plan says what ocrwatch will do with
it on this machine: which engine each inbox uses and why, where the API key
comes from, which language data it needs, and where sidecars go. Problems
found here (a missing folder, no key for an ocr.space inbox, a language
without data) are reported together with those of the config itself.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrwatch.apikey import CREDENTIAL_NAME, ENV_KEY, ApiKey, find_api_key
from ocrwatch.config import Config, EngineName, InboxConfig, LoadedConfig
from ocrwatch.errors import ConfigError
from ocrwatch.outputs.write import MODEL_FORMATS, OutputSettings, searchable_pdf_missing
from ocrwatch.rules import Rules as Rules
from ocrwatch.sidecar import SidecarPaths

OCRSPACE_ENGINE2_MAX_SIDE = 5000


@dataclass(frozen=True)
class InboxPlan:
    """One inbox as it will be processed: its validated options and what the plan resolved for it.

    Options the plan takes as written (``watch``, ``after``, ``patterns``,
    ``hooks``, ...) are read from :attr:`config`, with the config's own types.
    The attributes here are the ones the plan decides: the engine and rules,
    the folders ocrwatch writes to, and the scope (:attr:`path` and
    :attr:`recursive`), which a one-off walk of a folder may narrow or widen
    with ``dataclasses.replace`` without touching the config.
    """

    # Not hashed: a dict of regions makes the model unhashable, and the plan is hashable without it.
    config: InboxConfig = field(hash=False)
    """The inbox's entry in the config file as validated (for loose files: the defaults)."""
    index: int | None
    """Position in ``inboxes``; None for files given on the command line outside any inbox."""
    path: Path
    """The folder this plan covers: ``config.path``, or a folder walked on its own."""
    recursive: bool
    """Whether sub-folders of :attr:`path` belong to it: ``config.recursive``, unless a walk says otherwise."""
    rules: Rules
    engine_reason: str
    pdf_password: str | None = field(default=None, repr=False, compare=False)
    """The first line of ``pdf.password_file``, read when the plan was made."""

    @classmethod
    def of(
        cls,
        config: InboxConfig,
        *,
        index: int | None,
        rules: Rules,
        engine_reason: str,
        pdf_password: str | None = None,
    ) -> InboxPlan:
        """The plan of the inbox ``config``, covering its folder as configured."""
        return cls(
            config=config,
            index=index,
            path=config.path,
            recursive=config.recursive,
            rules=rules,
            engine_reason=engine_reason,
            pdf_password=pdf_password,
        )

    @property
    def output(self) -> Path | None:
        """Where sidecars go (mirroring the inbox's folders); None: next to each image."""
        return self.config.output

    @functools.cached_property
    def outputs(self) -> OutputSettings:
        """The files written for each input (``formats``) and their options (asked for at
        every verdict, so made once)."""
        return OutputSettings.of(self.config)

    def sidecars(self, image: Path) -> SidecarPaths:
        """Every sidecar path of ``image``: its text, record, error and other formats."""
        return SidecarPaths.of(image, self.sidecar_dir(image))

    @property
    def done_dir(self) -> Path | None:
        """Where finished images are moved: set only with ``after: move``, default ``done`` in the inbox."""
        if self.config.after != "move":
            return None
        return self.config.done_dir or self.config.path / "done"

    @property
    def failed_dir(self) -> Path | None:
        """Where failed images are moved, if anywhere."""
        return self.config.failed_dir

    @property
    def excluded(self) -> tuple[Path, ...]:
        """Folders inside this inbox that are never scanned: where ocrwatch puts things."""
        return tuple(
            folder for folder in (self.output, self.done_dir, self.failed_dir) if folder is not None
        )

    @property
    def label(self) -> str:
        return f"inboxes[{self.index}] {self.path}" if self.index is not None else "(no inbox)"

    def matches(self, name: str) -> bool:
        """True when a file called ``name`` is one this inbox OCRs."""
        lowered = name.lower()
        return any(
            fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in self.config.patterns
        )

    def contains(self, path: Path) -> bool:
        """True when ``path`` lies in this inbox (directly, or below it when recursive)."""
        try:
            relative = path.relative_to(self.path)
        except ValueError:
            return False
        return len(relative.parts) == 1 or (self.recursive and len(relative.parts) > 1)

    def sidecar_dir(self, image: Path) -> Path:
        """Where the sidecars of ``image`` go: beside it, or mirrored under ``output``."""
        if self.output is None:
            return image.parent
        try:
            relative = image.parent.relative_to(self.path)
        except ValueError:
            return self.output
        return self.output / relative


@dataclass(frozen=True)
class Plan:
    """The whole run: every inbox, the key, and what to warn about."""

    loaded: LoadedConfig
    inboxes: tuple[InboxPlan, ...]
    loose: InboxPlan
    """Rules for files named on the command line that lie in no inbox."""
    api_key: ApiKey | None
    warnings: tuple[str, ...] = field(default=())

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def engines(self) -> set[str]:
        """The engines some inbox (or loose file) may use."""
        return {inbox.rules.engine for inbox in self.inboxes} | {self.loose.rules.engine}

    def inbox_for(self, path: Path) -> InboxPlan:
        """The inbox whose rules apply to ``path``, or the loose-file rules."""
        best: InboxPlan | None = None
        for inbox in self.inboxes:
            if inbox.contains(path) and (
                best is None or len(inbox.path.parts) > len(best.path.parts)
            ):
                best = inbox
        return best or self.loose


def make_plan(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str] | None = None,
    require_inboxes: bool = True,
    check_folders: bool = True,
) -> Plan:
    """Resolve ``loaded`` for this machine. Raises ConfigError listing every problem."""
    from ocrwatch import engines  # late: engine modules import heavy libraries

    env = os.environ if env is None else env
    config = loaded.config
    problems: list[str] = []
    lookup = find_api_key(config.ocrspace, loaded.path, env)
    warnings = list(lookup.warnings)
    default_engine, default_reason = _default_engine(config, lookup.key)

    plans = []
    for index, inbox in enumerate(config.inboxes):
        engine: EngineName
        if inbox.engine is not None:
            engine, reason = inbox.engine, f"inboxes[{index}].engine"
        else:
            engine, reason = default_engine, default_reason
        password = None
        if inbox.pdf.password_file is not None:
            password, problem = _read_password(inbox.pdf.password_file)
            if problem:
                problems.append(loaded.where(["inboxes", index, "pdf", "password_file"]) + problem)
        if "pdf" in inbox.formats:
            missing = searchable_pdf_missing()
            if missing:
                problems.append(loaded.where(["inboxes", index, "formats"]) + missing)
        plans.append(
            InboxPlan.of(
                inbox,
                index=index,
                rules=_rules(config, inbox, engine),
                engine_reason=reason,
                pdf_password=password,
            )
        )
    loose = InboxPlan.of(
        InboxConfig(path=Path("/")),
        index=None,
        rules=Rules(
            engine=default_engine,
            engine_options=_engine_options(config, default_engine, table=False, scale=False),
            max_pixels=config.max_pixels,
        ),
        engine_reason=default_reason,
    )

    if require_inboxes and not plans:
        problems.append(f"{loaded.source}: at 'inboxes': no inboxes configured")
    checked: set[tuple[str, str, bool]] = set()
    for plan in plans:
        assert plan.index is not None
        where = loaded.where(["inboxes", plan.index])
        if plan.rules.engine == "ocrspace" and lookup.key is None:
            problems.append(
                where + "uses ocr.space but no API key was found: set ocrspace.api_key_file, "
                f"${ENV_KEY}, or the systemd credential {CREDENTIAL_NAME}"
            )
        language_problem = _language_problem(config, plan.rules)
        if language_problem:
            problems.append(loaded.where(["inboxes", plan.index, "language"]) + language_problem)
        elif (plan.rules.engine, plan.rules.language, plan.rules.detect_orientation) not in checked:
            checked.add((plan.rules.engine, plan.rules.language, plan.rules.detect_orientation))
            problem = engines.language_problem(
                plan.rules.engine,
                plan.rules.language,
                config,
                env,
                detect_orientation=plan.rules.detect_orientation,
            )
            if problem:
                problems.append(loaded.where(["inboxes", plan.index, "language"]) + problem)
        if check_folders:
            problems.extend(_folder_problems(loaded, plan))
    problems.extend(_overlap_problems(loaded, plans))
    if config.queue is not None and importlib.util.find_spec("redis") is None:
        problems.append(
            loaded.where(["queue"])
            + "needs the Redis client: pip install 'ocrwatch[redis]' (redis-py is not installed)"
        )
    if problems:
        raise ConfigError(problems)
    return Plan(
        loaded=loaded,
        inboxes=tuple(plans),
        loose=loose,
        api_key=lookup.key,
        warnings=tuple(warnings),
    )


def _read_password(path: Path) -> tuple[str | None, str | None]:
    """The first line of a password file, or the problem reading it."""
    try:
        with path.open("r", encoding="utf-8") as handle:
            line = handle.readline(4096)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return None, f"cannot read the PDF password file {path}: {reason}"
    password = line.rstrip("\r\n")
    if not password:
        return None, f"the PDF password file {path} is empty: its first line is the password"
    return password, None


def _default_engine(config: Config, key: ApiKey | None) -> tuple[EngineName, str]:
    if config.engine is not None:
        return config.engine, "engine set in the config"
    if key is not None:
        return "ocrspace", f"no engine set and an ocr.space {key} was found"
    return (
        "tesseract",
        "no engine set and no ocr.space API key found "
        f"(looked at ocrspace.api_key_file, ${ENV_KEY}, credential {CREDENTIAL_NAME})",
    )


def _engine_options(
    config: Config, engine: EngineName, *, table: bool, scale: bool
) -> tuple[tuple[str, Any], ...]:
    if engine == "ocrspace":
        return (
            ("ocr_engine", config.ocrspace.ocr_engine),
            ("max_upload_bytes", config.ocrspace.max_upload_bytes),
            ("scale", scale),
            ("table", table),
        )
    return (("deskew", config.tesseract.deskew),)


def _rules(config: Config, inbox: InboxConfig, engine: EngineName) -> Rules:
    return Rules(
        engine=engine,
        language=inbox.language,
        crop=inbox.crop.rule() if inbox.crop else None,
        regions=tuple((name, region.rule()) for name, region in (inbox.regions or {}).items()),
        detect_orientation=inbox.detect_orientation,
        engine_options=_engine_options(config, engine, table=inbox.table, scale=inbox.scale),
        max_pixels=config.max_pixels,
        text_layer=inbox.pdf.text_layer,
        max_page_mpixels=inbox.pdf.max_page_mpixels,
        max_pages=inbox.pdf.max_pages,
        pdf_upload=config.ocrspace.pdf_upload,
        pdf_page_limit=config.ocrspace.pdf_page_limit,
        orient_locally=(
            engine == "ocrspace"
            and inbox.detect_orientation
            and any(name in MODEL_FORMATS for name in inbox.formats)
        ),
    )


def _language_problem(config: Config, rules: Rules) -> str | None:
    if rules.language != "auto":
        return None
    if rules.engine == "tesseract":
        return "'auto' needs the ocr.space engine (OCREngine 2 or 3); the local engine needs a language such as 'eng'"
    if config.ocrspace.ocr_engine == 1:
        return "'auto' works only with ocrspace.ocr_engine 2 or 3 (ocr_engine is 1)"
    return None


def _folder_problems(loaded: LoadedConfig, plan: InboxPlan) -> list[str]:
    assert plan.index is not None
    where = loaded.where(["inboxes", plan.index, "path"])
    if not plan.path.exists():
        return [where + f"folder {plan.path} does not exist"]
    if not plan.path.is_dir():
        return [where + f"{plan.path} is not a folder"]
    if not os.access(plan.path, os.R_OK | os.X_OK):
        return [where + f"folder {plan.path} is not readable by this user"]
    return []


def _overlap_problems(loaded: LoadedConfig, plans: list[InboxPlan]) -> list[str]:
    """Inboxes that would see each other's files, or outputs that would come back as inputs.

    Paths are compared after resolving symbolic links, so a link cannot hide an overlap.
    """
    problems = []
    for index, plan in enumerate(plans):
        for other in plans:
            if other is plan:
                continue
            if _real(plan.path) == _real(other.path):
                if other.index is not None and other.index < index:
                    problems.append(
                        loaded.where(["inboxes", index, "path"])
                        + f"{plan.path} is already inboxes[{other.index}]; merge the two entries"
                    )
            elif _watched_by(other, plan.path):
                problems.append(
                    loaded.where(["inboxes", index, "path"])
                    + f"{plan.path} lies inside inboxes[{other.index}] ({other.path}), which is "
                    "recursive: its files would be picked up twice"
                )
        for key, folder in (("done_dir", plan.done_dir), ("failed_dir", plan.failed_dir)):
            if folder is None:
                continue
            for other in plans:
                if other is not plan and (
                    _real(folder) == _real(other.path) or _watched_by(other, folder)
                ):
                    problems.append(
                        loaded.where(["inboxes", index, key])
                        + f"{folder} is watched by inboxes[{other.index}] ({other.path}): "
                        "images moved there would be OCR'd again"
                    )
    return problems


def _real(path: Path) -> Path:
    """``path`` with symbolic links resolved (as far as it exists)."""
    return path.resolve()


def _watched_by(inbox: InboxPlan, folder: Path) -> bool:
    """True when files in ``folder`` would be candidates of ``inbox`` (links resolved)."""
    folder, root = _real(folder), _real(inbox.path)
    if folder == root:
        return True
    if not inbox.recursive or not folder.is_relative_to(root):
        return False
    return not any(folder.is_relative_to(_real(excluded)) for excluded in inbox.excluded)
