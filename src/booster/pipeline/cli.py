"""``booster run CONFIG.yaml [key=value ...]``, ``booster screen CONFIG.yaml`` and ``booster report RUN_DIR``."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("run", help="run an experiment: align → attack → evaluate (cached, resumable)",
                       description="Run the experiment grid a YAML config describes. Finished stages are "
                                   "cached by their inputs; re-running after an interruption resumes.")
    p.add_argument("config", nargs="?", help="experiment YAML (e.g. configs/quick-smollm2.yaml) or the name of a "
                                             "shipped preset (e.g. quick-smollm2); it names model and methods, and "
                                             "writes to out (default work/runs/{name})")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. attack.ps=[0.1] align.train.lr=1e-4")
    p.add_argument("--check", action="store_true", help="validate the config and data pools, then stop")
    p.add_argument("--describe", action="store_true",
                   help="print every config key with its default and documentation, then stop")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run)

    s = sub.add_parser("screen", help="what each data filter of a grid keeps of every user file (leakage, "
                                      "false removals), without fine-tuning",
                       description="Run the grid's data filters (moderation filter, SAFT) on every user file the "
                                   "grid would fine-tune on, through the same code as the attack stage, and write "
                                   "screen.json and screen.md (leakage and false removals) into the run folder. "
                                   "SAFT embeds with the aligned model: its alignment is read from the cache or "
                                   "trained first.")
    s.add_argument("config", help="experiment YAML or shipped preset name (as for `booster run`)")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for `booster run`")
    s.add_argument("--no-progress", action="store_true", help="hide progress bars")
    s.set_defaults(func=_screen)

    r = sub.add_parser("report", help="(re)write the Markdown/HTML report and plots of a run folder")
    r.add_argument("run_dir")
    r.set_defaults(func=_report)


def _run(args) -> int:
    from booster.config import load_config
    from booster.pipeline.config import ExperimentConfig
    from booster.pipeline.grid import check_config, plan, run_experiment

    if args.describe:
        from booster.config import describe

        from booster.methods import registry

        for key, default, doc in describe(ExperimentConfig):
            print(f"{key} = {default}\n    {doc}")
        print("\ndefenses (methods: …), from booster.methods.registry:")
        for d in registry.DEFENSES:
            extra = f", reads {'+'.join(d.streams)}" if d.streams else ""
            config = f", config {d.section}" if d.section else ""
            extra += f", attacked {d.attack_topology} under attack.topology: paper"
            print(f"{d.name}: {d.stage} stage{config}{extra}{' (the reference)' if d.reference else ''}\n    {d.paper}")
        from booster.data import attacks

        print("\nattack recipes (attack.recipe, attack.extra[].recipe), from booster.data.attacks:")
        for name, a in attacks.ATTACKS.items():
            p = "p from attack.ps" if a.p is None else f"p = {a.p:g}"
            print(f"{name}: {p}{' (the default)' if name == attacks.DEFAULT else ''}; {a.reference}\n"
                  f"    {attacks.definition(name)}")
        return 0
    if args.config is None:
        from booster.errors import BoosterError

        raise BoosterError("booster run: missing CONFIG (a YAML file such as configs/quick-smollm2.yaml)")
    from booster.paths import config_path

    cfg = load_config(ExperimentConfig, config_path(args.config), args.overrides)
    if args.check:  # without torch: a check answers at once
        check_config(cfg)
        a = cfg.attack
        extra = f" + {len(a.extra)} extra sub-grids" if a.extra else ""
        print(f"config OK: {len(plan(cfg))} attacked runs ({len(cfg.methods)} methods × {len(a.tasks)} tasks × "
              f"{len(a.ns)} n × {len(a.ps)} p × {len(a.seeds)} seeds{extra}) into {cfg.run_dir()}")
        return 0
    run_experiment(cfg, progress=not args.no_progress)
    return 0


def _screen(args) -> int:
    from booster.config import load_config
    from booster.paths import config_path
    from booster.pipeline.config import ExperimentConfig
    from booster.pipeline.screen import run_screen

    run_screen(load_config(ExperimentConfig, config_path(args.config), args.overrides), progress=not args.no_progress)
    return 0


def _report(args) -> int:
    from booster.errors import BoosterError
    from booster.report.load import load_run
    from booster.report.summary import write_report

    out = Path(args.run_dir)
    # every file is checked before the first plot is written: bad input leaves the old report as it was
    rows, histories, protocol = load_run(out)
    try:
        write_report(out, rows, histories, protocol)
    except OSError as e:
        raise BoosterError(f"cannot write the report into '{out}': {e.strerror or e}") from None
    print(f"wrote {out / 'report.md'}, {out / 'report.html'} and plots")
    return 0
