"""`ics prompts`: build the IVR prompt audio with espeak-ng, or check that it is complete."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("configs/demo.toml")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prompts",
        help="build or check the IVR prompt audio",
        description="Build the prompt WAV files (8 kHz mono) under ivr/prompts/<lang>/ from the "
        "wording in ivr/phrases.py with espeak-ng and sox, including one name prompt per "
        "configured facility; or check that every prompt the call flow needs exists.",
    )
    sub = parser.add_subparsers(dest="prompts_command", metavar="ACTION")
    sub.required = True
    build = sub.add_parser("build", help="synthesise prompts (needs espeak-ng and sox)")
    build.add_argument("--config", type=Path, default=None,
                       help="service config whose facilities get name prompts "
                       "(default configs/demo.toml when it exists)")
    build.add_argument("--no-config", action="store_true",
                       help="build without reading any config (no facility prompts from it)")
    build.add_argument("--lang", action="append", help="language to build (default: all)")
    build.add_argument("--facility", action="append", default=[], metavar="ID=NAME",
                       help="extra facility name prompt, e.g. tx-state-prison='Texas State Prison'")
    build.add_argument("--only-facilities", action="store_true",
                       help="build facility name prompts only")
    build.add_argument("--keep-existing", action="store_true",
                       help="keep files that exist (e.g. a facility name recorded by a person)")
    build.add_argument("--out", type=Path, default=None, help="output directory (default: shipped)")
    build.set_defaults(func=run_build)
    check = sub.add_parser("check", help="report missing prompt files")
    check.add_argument("--config", type=Path, default=None, help="service config to check against")
    check.set_defaults(func=run_check)


def _facilities(config: Path | None, required: bool) -> dict[str, str]:
    path = config if config is not None else DEFAULT_CONFIG
    if not path.exists():
        if required:
            raise SystemExit(f"ics prompts: config {path} does not exist")
        return {}
    try:
        from settings.config import load_config
    except ImportError as exc:
        raise SystemExit(f"ics prompts: cannot read configs here ({exc})") from None
    try:
        cfg = load_config(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"ics prompts: {path}: {exc}") from None
    return {fid: f.name for fid, f in cfg.facilities.items()}


def run_build(args: argparse.Namespace) -> int:
    from ivr.phrases import TEXTS
    from ivr.prompt_build import PROMPTS_DIR, PromptBuildError, build

    facilities = {} if args.no_config else _facilities(args.config, args.config is not None)
    for item in args.facility:
        if "=" not in item:
            print(f"ics prompts: --facility {item!r} is not ID=NAME", file=sys.stderr)
            return 2
        fid, name = item.split("=", 1)
        facilities[fid.strip()] = name.strip()
    langs = args.lang or list(TEXTS)
    out = args.out or PROMPTS_DIR
    try:
        written = build(
            langs,
            facilities,
            out,
            keep_existing=args.keep_existing,
            only_facilities=args.only_facilities,
            progress=True,
        )
    except PromptBuildError as exc:
        print(f"ics prompts: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} prompt files under {out} "
          f"({', '.join(langs)}; {len(facilities)} facilities)")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ivr.catalogue import PromptCatalogue
    from ivr.phrases import TEXTS

    facilities = _facilities(args.config, args.config is not None)
    problems = []
    for lang in TEXTS:
        cat = PromptCatalogue(lang)
        problems += [f"{lang}/{name}.wav" for name in cat.check()]
        have = set(cat.facility_ids())
        problems += [f"{lang}/facility/{fid}.wav" for fid in facilities if fid not in have]
    if problems:
        print("missing prompts (run `ics prompts build`):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"all prompts present for {', '.join(TEXTS)} and {len(facilities)} facilities")
    return 0
