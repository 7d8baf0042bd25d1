"""The `edgebench` command: a thin layer over the library.

Exit codes: 0 success; 1 some models failed; 2 bad input (unknown model or profile, malformed
catalog); 3 the controller's Python is too old.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebench.text_table import text_table
from edgebench_runtime.vocabulary import BAD_STATUSES, STATUSES

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_PYTHON = 0, 1, 2, 3
#: A host whose results all ended in one of these finished its work: measured, or skipped as planned.
FINISHED_STATUSES = tuple(status for status in STATUSES if status not in BAD_STATUSES)


def _split(values: str | None) -> list[str]:
    return [value.strip() for value in (values or "").split(",") if value.strip()]


def _cmd_models(args: argparse.Namespace) -> int:
    from edgebench.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    entries = catalog.resolve(profile=args.profile or "all")
    if args.task:
        entries = [entry for entry in entries if entry.task == args.task]
    membership = {
        name: [p for p, names in catalog.profiles.items() if name in names] for name in catalog.entries
    }
    rows = [
        [
            entry.name,
            entry.task,
            f"{entry.input['height']}x{entry.input['width']}",
            entry.decoder["name"],
            entry.source_kind,
            entry.reference.get("params_m", ""),
            entry.reference.get("gflops", ""),
            ",".join(membership[entry.name]) or "-",
        ]
        for entry in entries
    ]
    print(text_table(["model", "task", "input", "decoder", "source", "params_m", "gflops", "profiles"], rows))
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edgebench.catalog import load_catalog
    from edgebench.convert import convert

    catalog = load_catalog(args.catalog)
    if not args.profile and not args.models:
        raise SystemExit("edgebench convert: give --profile or --models")
    entries = catalog.resolve(profile=args.profile, models=_split(args.models))
    artifacts_dir = Path(args.artifacts)
    bar = tqdm(total=len(entries), unit="model", file=sys.stderr, disable=None)

    def progress(result) -> None:
        bar.set_postfix_str(f"{result.name}: {result.status}")
        bar.update()
        if result.status == "failed":
            tqdm.write(f"FAILED {result.message}", file=sys.stderr)

    results = convert(
        entries,
        artifacts_dir,
        catalog_dir=catalog.path.parent,
        opset=args.opset,
        weights_policy=args.weights,
        force=args.force,
        on_result=progress,
    )
    bar.close()
    rows = [
        [
            result.name,
            result.status,
            f"{result.seconds:.1f}",
            f"{result.size_bytes / 1e6:.1f} MB" if result.size_bytes else "-",
            f"{result.max_abs_diff:.2e}" if result.max_abs_diff is not None else "-",
            result.weights or "-",
        ]
        for result in results
    ]
    print(text_table(["model", "status", "seconds", "size", "max_diff", "weights"], rows))
    failed = [result for result in results if result.status == "failed"]
    for result in failed:
        print(f"error: {result.message}", file=sys.stderr)
    print(f"artifacts: {artifacts_dir.resolve()}")
    return EXIT_FAILED if failed else EXIT_OK


def _artifact_of(args: argparse.Namespace) -> Path:
    """The artifact directory of ``args.model`` under ``args.artifacts`` (predict, accuracy)."""
    from edgebench.catalog import load_catalog
    from edgebench.predict import find_artifact

    try:
        catalog = load_catalog(args.catalog)
    except Exception:
        catalog = None  # an artifact that exists needs no catalog
    return find_artifact(args.model, Path(args.artifacts), catalog)


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    from edgebench.predict import PredictError, draw, predict, result_as_data, result_text

    try:
        artifact = _artifact_of(args)
        manifest, result, image, infer_ms = predict(artifact, Path(args.image))
        data = result_as_data(manifest, result)
        if args.out:
            draw(image, manifest, result, data, Path(args.out))
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(data))
    else:
        print(result_text(args.model, data, infer_ms))
    if args.out:
        print(f"drawn: {args.out}", file=sys.stderr)
    return EXIT_OK


def _cmd_add_onnx(args: argparse.Namespace) -> int:
    import os

    from edgebench.add_onnx import AddOnnxError, append_entry, fetch, propose
    from edgebench.catalog import DEFAULT_CATALOG

    size = None
    if args.size:
        height, sep, width = args.size.lower().partition("x")
        if not (sep and height.isdigit() and width.isdigit()):
            print(f"error: --size {args.size!r}: give HEIGHTxWIDTH, e.g. 640x640", file=sys.stderr)
            return EXIT_BAD_INPUT
        size = (int(height), int(width))
    cache = Path(os.environ.get("EDGEBENCH_CACHE", Path.home() / ".cache" / "edgebench")) / "downloads"
    catalog_path = Path(args.catalog) if args.catalog else DEFAULT_CATALOG
    try:
        path, source = fetch(args.location, cache)
        proposal = propose(path, source, name=args.name, size=size)
        print(proposal.as_yaml(), end="")
        for note in proposal.notes:
            print(f"# {note}", file=sys.stderr)
        if args.write:
            append_entry(catalog_path, proposal)
            name = proposal.entry["name"]
            print(f"added {name} to {catalog_path}; next: edgebench convert --models {name}", file=sys.stderr)
        else:
            print(f"# not written: add --write to append it to {catalog_path}", file=sys.stderr)
    except AddOnnxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_accuracy(args: argparse.Namespace) -> int:
    import json

    from edgebench.accuracy import AccuracyError, evaluate, load_labelled
    from edgebench.predict import PredictError

    try:
        artifact = _artifact_of(args)
        data = load_labelled(Path(args.dataset), Path(args.annotations) if args.annotations else None)
        report = evaluate(artifact, data, args.score_threshold)
    except (AccuracyError, PredictError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report))
    elif report["task"] == "classification":
        top1, top5 = report["top1"], report["top5"]
        print(f"{args.model}: {report['images']} images, top-1 {top1:.2%}, top-5 {top5:.2%}")
    else:
        print(
            f"{args.model}: {report['images']} images, mAP {report['map']:.3f} (IoU 0.50:0.95), "
            f"AP50 {report['map50']:.3f}, AP75 {report['map75']:.3f}, "
            f"score threshold {report['score_threshold']}"
        )
    return EXIT_OK


def _cmd_accuracy_check(args: argparse.Namespace) -> int:
    import json

    from edgebench.accuracy import AccuracyError
    from edgebench.dataset_stage import check_labels, stage_dataset

    answers = {}
    for dataset in args.datasets:
        try:
            staged = stage_dataset(Path(dataset), Path(args.stage_into))
            mismatches = check_labels(staged.data, Path(args.artifacts), _split(args.models))
            answers[dataset] = {
                "name": staged.name,
                "kind": staged.kind,
                "images": staged.images,
                "copied": staged.copied,
                "problem": "; ".join(mismatches) or None,
            }
        except (AccuracyError, OSError) as exc:
            answers[dataset] = {"name": None, "kind": None, "images": 0, "copied": False, "problem": str(exc)}
    print(json.dumps(answers))
    return EXIT_OK


def _cmd_collect_check(args: argparse.Namespace) -> int:
    from edgebench.collect import CollectError, keep_fetched

    try:
        message, check = keep_fetched(Path(args.archive), Path(args.run_dir), args.host)
    except CollectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(message)
    if args.device_label:  # what the inventory says the device is, whatever the merge kept
        from edgebench.results import write_device_label

        write_device_label(Path(args.run_dir) / args.host, args.device_label)
    if args.accuracy_dataset:
        from edgebench.run_accuracy import score_host

        host_dir = Path(args.run_dir) / args.host
        for line in score_host(host_dir, Path(args.accuracy_dataset), Path(args.artifacts)):
            print(line)
    for problem in check.problems:
        print(f"problem: {args.host}: {problem}")
    return EXIT_FAILED if check.problems else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from edgebench.report import ResultsError, build_report, parse_formats
    from edgebench.results import summary_rows, write_summary_csv

    run_dirs = [Path(d) for d in args.run_dirs]
    try:
        path = build_report(
            run_dirs,
            out_dir=Path(args.out) if args.out else None,
            formats=parse_formats(args.format),
            artifacts_dir=Path(args.artifacts) if args.artifacts else None,
            timelines=not args.no_timelines,
        )
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for run_dir in run_dirs:
        write_summary_csv(run_dir)
        rows = summary_rows(run_dir)
        table = [
            [r["host"], r["model"], f"{r['provider']}-{r['mode']}", r["status"], r["images"],
             f"{r['infer_ms']:.2f}" if r["infer_ms"] is not None else "-",
             f"{r['fps']:.1f}" if r["fps"] is not None else "-", r["validity"],
             (r["reason"] or r["validity_reasons"] or "")[:80]]
            for r in rows
        ]  # fmt: skip
        headers = ["host", "model", "run", "status", "images", "infer_ms", "fps", "validity", "reason"]
        if any(r["accuracy"] for r in rows):  # a run on a labelled set: its accuracy beside its speed
            headers.insert(7, "accuracy")
            for line, r in zip(table, rows, strict=True):
                line.insert(7, _accuracy_cell(r))
        print(text_table(headers, table))
    print(f"report: {path}")
    return EXIT_OK


def _accuracy_cell(row: dict) -> str:
    """``top-1 0.950``, ``mAP 0.412``, ``unavailable`` or ``-`` for one summary row."""
    if row["accuracy"] != "computed":
        return row["accuracy"] or "-"
    if row["top1"] is not None:
        return f"top-1 {row['top1']:.3f}"
    return f"mAP {row['map']:.3f}"


def _cmd_history(args: argparse.Namespace) -> int:
    from edgebench.report import ResultsError, format_history, history_table

    try:
        table = history_table(Path(args.results), since=args.since, device=args.device, model=args.model)
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_history(table, all_rows=args.all))
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from edgebench.report import ResultsError, compare_runs, format_compare

    run_a, run_b = Path(args.run_a), Path(args.run_b)
    try:
        print(format_compare(compare_runs(run_a, run_b), run_a.name, run_b.name))
    except (ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _key_value(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _cmd_run(args: argparse.Namespace) -> int:
    from edgebench.fleet import run_benchmark

    extravars = dict(args.extra or [])
    models = extravars.get("edgebench_models")
    if isinstance(models, str):  # -e edgebench_models=a,b: a comma list, not a string of characters
        extravars["edgebench_models"] = _split(models)
    if args.profile:
        extravars["edgebench_profile"] = args.profile
    if args.models:
        extravars["edgebench_models"] = _split(args.models)
    if args.catalog:
        extravars["edgebench_catalog"] = str(Path(args.catalog).resolve())
    if extravars.get("edgebench_accuracy_dataset"):  # a path relative to here, not to the playbook
        dataset = Path(str(extravars["edgebench_accuracy_dataset"])).expanduser()
        extravars["edgebench_accuracy_dataset"] = str(dataset.resolve())
    live = sys.stderr.isatty()
    shown: dict[str, str] = {}

    def progress(hosts) -> None:
        for name, host in sorted(hosts.items()):
            line = host.line()
            if shown.get(name) != line:
                shown[name] = line
                print(("\r" if live else "") + line, file=sys.stderr, flush=True)

    result = run_benchmark(
        inventory=args.inventory,
        limit=args.limit,
        run_id=args.run_id,
        tags=args.tags,
        extravars=extravars,
        on_progress=progress,
    )
    rows = []
    if result.results_dir is not None and result.results_dir.is_dir():
        from edgebench.results import summary_rows

        by_host: dict[str, list[str]] = {}
        valid: dict[str, list[str]] = {}
        for row in summary_rows(result.results_dir):
            by_host.setdefault(row["host"], []).append(row["status"])
            valid.setdefault(row["host"], []).append(row["validity"])
        for name, host in sorted(result.hosts.items()):
            statuses = by_host.get(name, [])
            verdict = (
                host.state
                if host.state != "ok"
                else (
                    "complete"
                    if statuses and all(s in FINISHED_STATUSES for s in statuses)
                    else "partial"
                    if statuses
                    else "no results"
                )
            )
            verdicts = valid.get(name, [])
            rows.append(
                [
                    name,
                    verdict,
                    len(statuses),
                    f"{verdicts.count('valid')}/{len(verdicts)}" if verdicts else "-",
                    ", ".join(sorted(set(statuses))),
                ]
            )
    else:
        rows = [[name, host.state, 0, "-", ""] for name, host in sorted(result.hosts.items())]
    print(text_table(["host", "result", "runs", "valid", "statuses"], rows))
    for name, host in sorted(result.hosts.items()):
        if host.failure:
            print(f"{name} [{host.state}] {host.failure}", file=sys.stderr)
    invalid = []
    if result.results_dir is not None and result.results_dir.is_dir():
        from edgebench.results import summary_rows

        invalid = [r for r in summary_rows(result.results_dir) if r["validity"] == "invalid"]
    for r in invalid[:20]:
        print(f"invalid: {r['host']} {r['model']} {r['provider']}-{r['mode']}: {r['validity_reasons']}")
    if len(invalid) > 20:
        print(f"... and {len(invalid) - 20} more invalid results (edgebench report lists them all)")
    if result.results_dir is not None and result.results_dir.is_dir():
        print(f"results: {result.results_dir}")
    elif result.rc != 0:
        print("no results were collected: the run stopped before the collect phase")
    if result.run_id:
        print(f"resume or complete this run with: edgebench run --run-id {result.run_id}")
    if result.log_path is not None:
        print(f"full log: {result.log_path}")
    return EXIT_OK if result.rc == 0 else EXIT_FAILED


def _cmd_fleet(args: argparse.Namespace) -> int:
    from edgebench.fleet import list_fleet

    rows = []
    for host in list_fleet(args.inventory):
        facts = host["facts"] or {}
        rows.append([
            host["host"], ",".join(host["groups"]) or "-", host["label"] or "-", host["address"] or "local",
            facts.get("board_model") or facts.get("cpu_model") or "-",
            ",".join(facts.get("available_providers") or []) or "-",
            host["probed_in_run"] or "not run yet",
        ])  # fmt: skip
    print(text_table(["host", "groups", "label", "address", "board", "providers", "probed in run"], rows))
    return EXIT_OK


def _cmd_scheduled_run(args: argparse.Namespace) -> int:
    from edgebench.schedule import scheduled_run

    return scheduled_run(
        Path(args.log_dir),
        keep_logs=args.keep_logs,
        inventory=args.inventory,
        limit=args.limit,
        extravars=dict(args.extra or []),
    )


def _cmd_wheelhouse(args: argparse.Namespace) -> int:
    from edgebench.wheelhouse import (
        WheelBuildError,
        build_runtime_wheel,
        download_device_wheels,
        download_source_packages,
    )

    try:
        if args.action == "build":
            path, changed = build_runtime_wheel(Path(args.source), Path(args.dest))
            print(f"{'built' if changed else 'unchanged'} {path}")
        else:
            machine, _, python = args.platform.partition("-py")
            added = []
            if args.source:
                added += download_source_packages(Path(args.dest), python=python, packages=args.source)
            if args.requirements:
                added += download_device_wheels(
                    Path(args.dest), machine=machine, python=python, manylinux_tags=args.tag,
                    requirements=args.requirements,
                )  # fmt: skip
            print("\n".join(f"added {name}" for name in added) or "unchanged")
    except WheelBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_plan_check(args: argparse.Namespace) -> int:
    import json

    from edgebench.plan_check import check_plans

    try:
        if args.plans == "-":
            answer = check_plans(json.load(sys.stdin))
        else:
            with open(args.plans) as handle:
                answer = check_plans(json.load(handle))
    except (OSError, ValueError) as exc:
        print(f"error: {args.plans}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(answer, indent=1))
    return EXIT_FAILED if any(answer["problems"].values()) else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgebench", description="Benchmark neural networks on a fleet of edge devices."
    )
    parser.add_argument("--catalog", default=None, help="model catalog (default: models/catalog.yml)")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the model catalog")
    models.add_argument("--task", choices=("classification", "detection", "pose", "segmentation"))
    models.add_argument("--profile", help="only models of this profile (quick, thesis, large, all)")
    models.set_defaults(func=_cmd_models)

    conv = commands.add_parser("convert", help="export catalog models to verified ONNX artifacts")
    conv.add_argument("--profile", help="a catalog profile: quick, thesis, large, all")
    conv.add_argument("--models", help="comma-separated model names")
    conv.add_argument("--artifacts", default="artifacts", help="artifacts directory (default: artifacts)")
    conv.add_argument(
        "--opset", type=int, help="override the catalog's opset (artifacts go to <model>-opset<N>)"
    )
    conv.add_argument(
        "--weights",
        choices=("auto", "random", "pretrained"),
        default="auto",
        help="official weights when reachable (auto), always random init, or require official weights",
    )
    conv.add_argument("--force", action="store_true", help="re-export even when the artifact is up to date")
    conv.set_defaults(func=_cmd_convert)

    predict = commands.add_parser(
        "predict", help="run one converted model on one image here and show the decoded result"
    )
    predict.add_argument("model", help="model name (its artifact directory)")
    predict.add_argument("image", help="an image file (JPEG, PNG, ...)")
    predict.add_argument("--artifacts", default="artifacts", help="artifacts directory (default: artifacts)")
    predict.add_argument("--json", action="store_true", help="print the result as JSON (pixels)")
    predict.add_argument("--out", help="write the image with the result drawn on it (PNG, JPEG)")
    predict.set_defaults(func=_cmd_predict)

    add_onnx = commands.add_parser(
        "add-onnx", help="propose a catalog entry for an ONNX file or URL (writes it with --write)"
    )
    add_onnx.add_argument("location", metavar="FILE|URL", help="the ONNX file, or a URL to download it from")
    add_onnx.add_argument("--name", help="model name (default: from the file name)")
    add_onnx.add_argument("--size", help="input HEIGHTxWIDTH when the file's input is dynamic")
    add_onnx.add_argument("--write", action="store_true", help="append the entry to the catalog")
    add_onnx.set_defaults(func=_cmd_add_onnx)

    accuracy = commands.add_parser(
        "accuracy", help="top-1/top-5 or mAP of a converted model on a labelled image folder, here"
    )
    accuracy.add_argument("model", help="model name (its artifact directory)")
    accuracy.add_argument("dataset", help="class-per-folder images, or images with annotations.json (COCO)")
    accuracy.add_argument("--annotations", help="COCO-style JSON (default: DATASET/annotations.json)")
    accuracy.add_argument(
        "--score-threshold", type=float, help="detection score threshold for mAP (default: the manifest's)"
    )
    accuracy.add_argument("--artifacts", default="artifacts", help="artifacts directory (default: artifacts)")
    accuracy.add_argument("--json", action="store_true", help="print the figures as JSON")
    accuracy.set_defaults(func=_cmd_accuracy)

    accuracy_check = commands.add_parser(
        "accuracy-check",
        help="check labelled sets for a run and stage each flat for the devices (validate phase)",
    )
    accuracy_check.add_argument(
        "datasets", nargs="+", metavar="DATASET", help="absolute path of a labelled set"
    )
    accuracy_check.add_argument(
        "--stage-into", required=True, help="directory of the staged sets (<artifacts>/datasets)"
    )
    accuracy_check.add_argument(
        "--artifacts", default="artifacts", help="artifacts directory (default: artifacts)"
    )
    accuracy_check.add_argument(
        "--models", help="comma-separated models whose labels the set's names must match"
    )
    accuracy_check.set_defaults(func=_cmd_accuracy_check)

    collect = commands.add_parser(
        "collect-check", help="unpack and check a device's fetched results (collect phase)"
    )
    collect.add_argument("archive", help="the fetched <host>.tar.gz, or a directory fetched file by file")
    collect.add_argument("--run-dir", required=True, help="controller results/<run_id> directory")
    collect.add_argument("--host", required=True, help="inventory name of the device")
    collect.add_argument(
        "--device-label",
        default="",
        help="the inventory's edgebench_device_label, written to <host>/device.json",
    )
    collect.add_argument(
        "--accuracy-dataset",
        help="the labelled set the run measured: score each run's predictions.jsonl into its summary.json",
    )
    collect.add_argument(
        "--artifacts",
        default="artifacts",
        help="artifacts directory, for the models' labels (default: artifacts)",
    )
    collect.set_defaults(func=_cmd_collect_check)

    run = commands.add_parser("run", help="run benchmark.yml on the fleet with live progress")
    run.add_argument("-i", "--inventory", help="inventory file (default: inventory/local.yml)")
    run.add_argument("-l", "--limit", help="hosts or groups, as ansible-playbook -l")
    run.add_argument("--profile", help="catalog profile for this run")
    run.add_argument("--models", help="comma-separated models for this run (replaces the profile)")
    run.add_argument("--tags", help="phases to run, e.g. run,collect")
    run.add_argument("--run-id", help="resume or extend this run instead of starting a new one")
    run.add_argument(
        "-e",
        "--extra",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="override a run-plan variable (YAML value), repeatable",
    )
    run.set_defaults(func=_cmd_run)

    fleet = commands.add_parser("fleet", help="list the inventory with each device's probed facts")
    fleet.add_argument("-i", "--inventory", help="inventory file (default: inventory/local.yml)")
    fleet.set_defaults(func=_cmd_fleet)

    scheduled = commands.add_parser("scheduled-run", help="one locked, logged fleet run (what cron runs)")
    scheduled.add_argument("--log-dir", required=True, help="directory for per-run logs and the lock")
    scheduled.add_argument("--keep-logs", type=int, default=30, help="run logs to keep (default 30)")
    scheduled.add_argument("-i", "--inventory", help="inventory file")
    scheduled.add_argument("-l", "--limit", help="hosts or groups")
    scheduled.add_argument("-e", "--extra", action="append", type=_key_value, metavar="KEY=VALUE")
    scheduled.set_defaults(func=_cmd_scheduled_run)

    report = commands.add_parser("report", help="tables, figures and report.html of one or more runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="results/<run_id> directories")
    report.add_argument("--out", help="output directory (default: RUN_DIR/report)")
    report.add_argument("--format", help="comma-separated: html, md, csv (default: all)")
    report.add_argument(
        "--artifacts", help="artifacts directory for the model-facts table (default: artifacts)"
    )
    report.add_argument("--no-timelines", action="store_true", help="skip the per-image timeline figures")
    report.set_defaults(func=_cmd_report)

    history = commands.add_parser("history", help="results across runs, with regression flags")
    history.add_argument("--results", default="results", help="results directory holding the runs")
    history.add_argument("--since", help="only runs on or after this date (YYYY-MM-DD)")
    history.add_argument("--device", help="a host name or a device type")
    history.add_argument("--model", help="one model")
    history.add_argument("--all", action="store_true", help="every run of every result, not only the latest")
    history.set_defaults(func=_cmd_history)

    wheelhouse = commands.add_parser("wheelhouse", help="the wheels that provisioning pushes to devices")
    actions = wheelhouse.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="build the edgebench wheel from a checkout")
    build.add_argument("--source", default=".", help="edgebench checkout (default: .)")
    build.add_argument("--dest", required=True, help="directory that keeps the one current wheel")
    download = actions.add_parser("download", help="download one device platform's dependency wheels")
    download.add_argument("--dest", required=True, help="directory of this platform's wheels")
    download.add_argument("--platform", required=True, help="architecture-pyX.Y, e.g. aarch64-py3.8")
    download.add_argument(
        "--tag", action="append", required=True, help="manylinux tag to accept, newest first; repeatable"
    )
    download.add_argument(
        "--source",
        action="append",
        default=[],
        help="a package to fetch as its source distribution "
        "(no wheels exist: pycuda), built on the device; repeatable",
    )
    download.add_argument("requirements", nargs="*", help="requirement specifiers, e.g. numpy>=1.19")
    wheelhouse.set_defaults(func=_cmd_wheelhouse)

    plan_check = commands.add_parser(
        "plan-check",
        help="check run plans (the validate play's): print the vocabulary and each device's problems",
    )
    plan_check.add_argument("plans", help="JSON file {host: plan}; - for standard input")
    plan_check.set_defaults(func=_cmd_plan_check)

    compare = commands.add_parser("compare", help="two runs side by side")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.set_defaults(func=_cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - the wheel also installs on 3.6 devices
        print(
            "edgebench (the controller) needs Python 3.11+; devices run edgebench-runtime instead",
            file=sys.stderr,
        )
        return EXIT_PYTHON
    from edgebench.catalog import CatalogError

    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
