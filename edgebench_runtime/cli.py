"""``edgebench-runtime``: the device-side command line.

Commands:
  run      benchmark models x providers x modes into an output directory (resumable)
  start | wait | status
           the detached run of a plan file, for the playbooks: each prints one progress line
           ``edgebench-progress/1 {json}`` (control.py)
  probe    print the device fingerprint as JSON (Ansible facts; env.json)
  verify   check the sha256 of artifacts against their manifests
  summarize  recompute summary.json statistics of result directories from their timings.csv
  engines  build (or find cached) TensorRT engines: one line per model x precision with
           "built", "cached" or "skipped"; exit 0, 2 usage, 3 no TensorRT / missing input, 4 a failure

Exit codes of ``run``:
  0    every run complete (or already complete) or skipped (provider unavailable here)
  1    internal error (a bug: the traceback is printed)
  2    usage error: bad arguments, unknown provider or mode, bad cooldown policy
  3    input error: artifacts directory or model missing, image folder missing or empty,
       output directory not writable
  4    finished, but at least one run is failed / oom / timeout / partial (corrupt artifact,
       crash, full disk, ...) or was refused (existing rows measured with other settings)
  130  interrupted (SIGINT/SIGTERM); partial results are kept and a rerun continues them
``verify``: 0 all artifacts intact, 4 at least one corrupt, 3 missing. ``probe``: 0, 1 on a bug.

Python 3.6 compatible.
"""

import argparse
import json
import os
import sys
import traceback
from typing import List, Optional

from . import __version__
from .vocabulary import MODES, PRECISIONS, PROVIDER_FAMILIES, TENSORRT_DEFAULT_PRECISION

__all__ = ["EXIT_CODES_HELP", "main"]

EXIT_CODES_HELP = __doc__[__doc__.index("Exit codes of") : __doc__.index("Python 3.6 compatible")].strip()


def _csv(text):
    return [item.strip() for item in str(text).split(",") if item.strip()]


def _key_values(items):
    """["cuda:device_id=0", "arena=1"] -> {"cuda": {"device_id": "0"}, "": {"arena": "1"}}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % item)
        key, value = item.split("=", 1)
        scope = ""
        if ":" in key:
            scope, key = key.split(":", 1)
        out.setdefault(scope, {})[key] = value
    return out


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgebench-runtime",
        description="edgebench's on-device benchmark runner.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="edgebench-runtime " + __version__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser(
        "run",
        help="benchmark models",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--plan",
        default=None,
        help="the run plan file (plan.py) the playbooks push; --models, --providers and --modes then "
        "narrow it to one unit of work, --output replaces its output path, and the plan's settings "
        "replace the flags below",
    )
    run.add_argument("--artifacts", default=None, help="artifacts directory (one folder per model)")
    run.add_argument("--models", default=None, help="comma-separated model names, or 'all' (default)")
    run.add_argument(
        "--providers",
        default=None,
        help="comma-separated: %s[-%s] (default cpu)"
        % (", ".join(PROVIDER_FAMILIES), TENSORRT_DEFAULT_PRECISION),
    )
    run.add_argument(
        "--modes", default=None, help="comma-separated: %s (default %s)" % (", ".join(MODES), MODES[0])
    )
    run.add_argument("--images", default=None, help="image folder (default ARTIFACTS/images)")
    run.add_argument("--count", type=int, default=100, help="measured images per run; cycled (default 100)")
    run.add_argument("--warmup", type=int, default=10, help="warm-up inferences in warm mode (default 10)")
    run.add_argument(
        "--min-duration",
        type=float,
        default=None,
        help="seconds of measured time a valid result needs; the run extends itself to it and to 64 "
        "images (default 3, trtexec's)",
    )
    run.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="cap on the images a run extends itself to (default 10000, or --count when larger)",
    )
    run.add_argument(
        "--predictions",
        action="store_true",
        help="also write each image's decoded result to predictions.jsonl (for accuracy on a labelled set)",
    )
    run.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the backend's)")
    run.add_argument("--inter-op-threads", type=int, default=None)
    run.add_argument(
        "--graph-opt",
        default="all",
        choices=("disable", "basic", "extended", "all"),
        help="ONNX Runtime graph optimisation level (default all)",
    )
    run.add_argument(
        "--provider-option",
        action="append",
        default=[],
        metavar="[FAMILY:]KEY=VALUE",
        help="provider option, e.g. cuda:device_id=0 (repeatable)",
    )
    run.add_argument(
        "--session-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="ONNX Runtime session config entry (repeatable)",
    )
    run.add_argument("--timeout", type=float, default=None, help="seconds per model x provider x mode")
    run.add_argument("--cooldown", default="none", help="none | fixed:SECONDS | thermal[:DELTA_C[:CAP_S]]")
    run.add_argument("--output", default=None, help="output directory (results/<run_id>/<host>)")
    run.add_argument("--force", action="store_true", help="redo runs that already have results")
    run.add_argument("--memory-limit-mb", type=int, default=None, help="RLIMIT_AS of each child (MiB)")
    run.add_argument(
        "--child-prefix",
        default=None,
        help="command prefix for each child, e.g. 'taskset -c 3' (shell-split)",
    )
    run.add_argument("--telemetry-interval", type=float, default=1.0, help="seconds; 0 disables (default 1)")
    run.add_argument("--decode", choices=("auto", "cv2", "pillow"), default="auto")
    run.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: when it is a terminal)",
    )
    run.add_argument("--quiet", action="store_true", help="no per-run log lines")

    for name, text in (
        ("start", "start `run --plan` detached from this session (or attach to the one running)"),
        ("wait", "wait up to --for seconds for the detached benchmark to end; print its progress"),
        ("status", "print the detached benchmark's progress"),
    ):
        control = sub.add_parser(name, help=text)
        control.add_argument("--plan", required=True, help="the run plan file (its output path)")
        control.add_argument(
            "--work-dir", default=".", help="where run.pid, run.rc and run.log live (default: here)"
        )
        if name == "start":
            control.add_argument("--models", default=None, help="narrow the plan to these models")
            control.add_argument("--providers", default=None, help="narrow the plan to these providers")
            control.add_argument("--modes", default=None, help="narrow the plan to these modes")
            control.add_argument(
                "--need-bytes",
                type=int,
                default=None,
                help="start nothing when the output directory has less free space (the line says so)",
            )
        if name == "wait":
            control.add_argument("--for", dest="seconds", type=float, default=5.0, help="seconds (default 5)")

    probe = sub.add_parser("probe", help="print the device fingerprint as JSON")
    probe.add_argument("--output", default=None, help="also write it to this file")

    verify = sub.add_parser("verify", help="check artifacts' sha256 against their manifests")
    verify.add_argument("artifacts", nargs="+", help="artifact directories")

    summarize = sub.add_parser("summarize", help="recompute statistics of result directories")
    summarize.add_argument("result_dirs", nargs="+")

    engines = sub.add_parser(
        "engines",
        help="build (or find cached) TensorRT engines; one line per model x precision: built | cached",
    )
    engines.add_argument(
        "--plan",
        default=None,
        help="the run plan file: its models, TensorRT precisions, workspace and calibration images "
        "(the run looks the engines up with the same ones)",
    )
    engines.add_argument("--artifacts", default=None, help="artifacts directory (one folder per model)")
    engines.add_argument("--models", default=None, help="comma-separated model names")
    engines.add_argument(
        "--precisions",
        default=None,
        help="comma-separated: %s (default %s)" % (", ".join(PRECISIONS), TENSORRT_DEFAULT_PRECISION),
    )
    engines.add_argument(
        "--workspace-mb", type=int, default=None, help="builder memory pool limit in MiB (default 1024)"
    )
    engines.add_argument("--engine-cache", default=None, help="engine directory (default ARTIFACT/engines)")
    engines.add_argument("--calibration-images", default=None, help="image folder for int8 calibration")
    engines.add_argument("--device-id", type=int, default=0)

    child = sub.add_parser("_child", help=argparse.SUPPRESS)
    child.add_argument("job")
    return parser


def _invocation_options(args):
    """What belongs to this invocation rather than to the plan."""
    import shlex

    return {
        "force": args.force,
        "memory_limit_mb": args.memory_limit_mb,
        "child_prefix": shlex.split(args.child_prefix) if args.child_prefix else None,
        "telemetry_interval": args.telemetry_interval,
        "use_cv2": {"auto": None, "cv2": True, "pillow": False}[args.decode],
        "progress": {"auto": None, "always": True, "never": False}[args.progress],
        "log": (lambda text: None) if args.quiet else None,
    }


def _plan_from_arguments(args):
    from .plan import Plan, UsageError

    try:
        options = _key_values(args.provider_option)
        config = _key_values(args.session_config).get("", {})
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None
    if args.artifacts is None or args.output is None:
        raise UsageError("--artifacts and --output are needed (or a --plan that holds them)")
    if args.min_duration is not None and args.min_duration < 0:
        raise UsageError("--min-duration must be 0 or more seconds")
    if args.max_images is not None and args.max_images < 1:
        raise UsageError("--max-images must be at least 1")
    return Plan(
        artifacts_dir=args.artifacts,
        models=_csv(args.models or "all"),
        providers=_csv(args.providers or "cpu"),
        modes=_csv(args.modes or MODES[0]),
        images_dir=args.images,
        count=args.count,
        warmup=args.warmup,
        threads=args.threads,
        inter_op_threads=args.inter_op_threads,
        graph_optimization_level=args.graph_opt,
        provider_options=options,
        session_config=config,
        timeout_s=args.timeout,
        cooldown=args.cooldown,
        output_dir=args.output,
        min_duration_s=args.min_duration,
        max_images=args.max_images,
        record_predictions=args.predictions,
        **_invocation_options(args)
    )


def _run(args):
    from .plan import InputError, UsageError, load_plan
    from .supervisor import EXIT, run_plan

    try:
        if args.plan:
            plan = load_plan(
                args.plan,
                models=_csv(args.models) if args.models else None,
                providers=_csv(args.providers) if args.providers else None,
                modes=_csv(args.modes) if args.modes else None,
                output_dir=args.output,
                **_invocation_options(args)
            )
        else:
            plan = _plan_from_arguments(args)
        return run_plan(plan)
    except ValueError as exc:  # cooldown policy parsing
        sys.stderr.write("edgebench-runtime run: %s\n" % exc)
        return EXIT["usage"]
    except UsageError as exc:
        sys.stderr.write("edgebench-runtime run: %s\n" % exc)
        return EXIT["usage"]
    except InputError as exc:
        sys.stderr.write("edgebench-runtime run: %s\n" % exc)
        return EXIT["input"]


def _control(args):
    """start | wait | status (control.py): the run role's view of the detached benchmark."""
    from . import control
    from .plan import UsageError, read_plan

    try:
        plan = read_plan(args.plan)
    except UsageError as exc:
        sys.stderr.write("edgebench-runtime %s: %s\n" % (args.command, exc))
        return 2
    work_dir = os.path.abspath(args.work_dir)
    output_dir = os.path.expanduser(plan["paths"]["output"])
    if args.command == "start":
        run_arguments = ["--plan", os.path.abspath(args.plan)]
        for flag in ("models", "providers", "modes"):
            if getattr(args, flag):
                run_arguments += ["--" + flag, getattr(args, flag)]
        return control.start(work_dir, output_dir, run_arguments, need_bytes=args.need_bytes)
    if args.command == "wait":
        return control.wait(work_dir, output_dir, args.seconds)
    return control.wait(work_dir, output_dir, 0.0)


def _engines(args):
    from .engines import DEFAULT_WORKSPACE_MB
    from .engines_command import build_engines
    from .plan import UsageError, read_plan, tensorrt_options
    from .vocabulary import parse_provider

    if args.plan:
        try:
            data = read_plan(args.plan)
        except UsageError as exc:
            sys.stderr.write("edgebench-runtime engines: %s\n" % exc)
            return 2
        trt = tensorrt_options(data)
        precisions = [p for f, p in map(parse_provider, data["providers"]) if f == "tensorrt"]
        return build_engines(
            os.path.expanduser(data["paths"]["artifacts"]),
            _csv(args.models) if args.models else data["models"],
            _csv(args.precisions) if args.precisions else precisions,
            workspace_mb=trt["workspace_mb"],
            engine_cache=args.engine_cache,
            calibration_images=trt["calibration_images"],
            device_id=args.device_id,
        )
    if args.artifacts is None or args.models is None:
        sys.stderr.write("edgebench-runtime engines: --artifacts and --models are needed (or --plan)\n")
        return 2
    return build_engines(
        args.artifacts,
        _csv(args.models),
        _csv(args.precisions or TENSORRT_DEFAULT_PRECISION),
        workspace_mb=args.workspace_mb or DEFAULT_WORKSPACE_MB,
        engine_cache=args.engine_cache,
        calibration_images=args.calibration_images,
        device_id=args.device_id,
    )


def _verify(args):
    from .manifest import ArtifactError, verify_artifact

    code = 0
    for directory in args.artifacts:
        if not os.path.isdir(directory):
            sys.stdout.write("%s: missing\n" % directory)
            code = max(code, 3)
            continue
        try:
            verify_artifact(directory)
            sys.stdout.write("%s: ok\n" % directory)
        except ArtifactError as exc:
            sys.stdout.write("%s: CORRUPT: %s\n" % (directory, exc))
            code = 4
    return code


def _summarize(args):
    from .results import atomic_write_json, read_json, read_timings, summarize_rows

    code = 0
    for directory in args.result_dirs:
        path = os.path.join(directory, "summary.json")
        summary = read_json(path)
        if summary is None:
            sys.stderr.write("%s: no summary.json\n" % directory)
            code = 3
            continue
        rows = read_timings(os.path.join(directory, "timings.csv"))
        summary.update(summarize_rows(rows, cold=summary.get("mode") == "cold"))
        summary["images"]["measured"] = int(rows["index"].size)
        atomic_write_json(path, summary)
        sys.stdout.write(
            json.dumps({"dir": directory, "fps": summary.get("fps"), "status": summary.get("status")}) + "\n"
        )
    return code


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "probe":
            from .probe import main as probe_main

            return probe_main(args.output)
        if args.command == "verify":
            return _verify(args)
        if args.command == "summarize":
            return _summarize(args)
        if args.command == "engines":
            return _engines(args)
        if args.command in ("start", "wait", "status"):
            return _control(args)
        if args.command == "_child":
            from .bench import run_child

            return run_child(args.job)
        parser.print_help()
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
