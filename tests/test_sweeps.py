"""Sweeps: Hydra multirun with a failing job (through the joblib launcher), Optuna with a stored
and resumed study and with two searches on one study, and ``visionlab compare`` over the runs
they leave."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from forked import run_forked

from visionlab.cli.main import main
from visionlab.errors import UserError

SMALL_DATA = ["debug=fast", "callbacks.progress_bar=null", "data.train_per_class=4", "data.val_per_class=2",
              "data.test_per_class=2"]


def _train_in_process(*overrides: str) -> None:
    main(["train", *overrides])


@pytest.mark.slow
def test_multirun_writes_one_run_dir_per_job_and_survives_a_failing_one(in_project, capfd):
    """Through the joblib launcher: its jobs run two at a time in worker processes of their own."""
    with pytest.raises(SystemExit) as exit_info:  # after every job: scripts read the exit code, not the log
        _train_in_process("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "freeze=last_n",
                          "freeze.n=999,1,2", *SMALL_DATA)
    assert exit_info.value.code == 1
    (sweep,) = (in_project / "outputs" / "multirun").glob("*/*")
    statuses = {job: json.loads((sweep / job / "status.json").read_text()) for job in ("0", "1", "2")}
    assert statuses["0"]["status"] == "failed" and "freeze.n=999" in statuses["0"]["error"]
    assert "freeze.n=999" in (sweep / "0" / "train.log").read_text()  # the failed job keeps its log
    for job, n in (("1", "1"), ("2", "2")):
        assert statuses[job]["status"] == "finished" and 0.0 <= statuses[job]["value"] <= 1.0
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert f"freeze.n={n}" in statuses[job]["overrides"]
    best = max(("1", "2"), key=lambda job: statuses[job]["value"])
    assert (f"sweep: 2 finished, 1 failed; best test/acc={statuses[best]['value']:.4f} "
            f"(freeze.n={best})") in capfd.readouterr().out
    for job in ("1", "2"):  # TensorBoard: a readable run name and the HPARAMS plugin's data
        (events,) = (sweep / job / "tensorboard").iterdir()
        assert f"freeze.n={job}" in events.name and "freeze=last_n" in events.name
        hparams, scalars = read_hparams(events / "hparams")  # the session, in a folder of its own
        assert hparams["freeze.n"] == float(job) and hparams["freeze"] == "last_n"
        assert hparams["backbone.name"] == "shapes_net" and hparams["status"] == "finished"
        assert "hp_metric" not in scalars
        assert scalars["hparams/test_acc"] == pytest.approx(statuses[job]["value"])
        assert {"hparams/best_val_acc", "run/epochs", "run/wall_time_s"} <= set(scalars)
        assert not {"epoch", "train/loss"} & set(scalars)  # results only: HPARAMS takes every scalar there
    # visionlab compare: the ranked table from the event files, failed runs last
    rows = compare_rows(sweep)
    assert rows[0][:4] == ["#", "run", "best val/acc", "epoch"]
    assert rows[0][-3:] == ["epochs", "wall time", "status"]
    assert [row[1] for row in rows[1:]][-1] == "freeze.n=999" and rows[-1][-1] == "failed"
    for row in rows[1:3]:
        _, scalars = read_hparams(next((sweep / row[1][-1] / "tensorboard").iterdir()) / "hparams")
        assert float(row[2]) == pytest.approx(scalars["hparams/best_val_acc"], abs=1e-4)
        assert row[-1] == "finished"
    assert (sweep / "compare.md").read_text().count("\n") == 2 + 3 and (sweep / "compare.png").is_file()


def test_compare_ranks_a_loss_lowest_first_and_the_monitor_by_mode(tmp_path):
    from visionlab.cli.compare import rank
    from visionlab.inference.runs import RunRecord

    def record(name, acc, loss):
        return RunRecord(tmp_path / name, [f"x={name}"], "val/acc", "max", 2,
                         curves={"val/acc": [(0, acc / 2), (1, acc)], "val/loss": [(0, loss), (1, loss * 2)]})

    runs = [record("a", 0.5, 0.9), record("b", 0.8, 0.3), record("c", 0.6, 0.6)]
    assert [r.path.name for r in rank(runs, "val/acc", None)] == ["b", "c", "a"]
    assert [r.path.name for r in rank(runs, "val/loss", 2)] == ["b", "c"]  # best = lowest, at epoch 0
    assert runs[1].best("val/loss") == (0.3, 0)


def compare_rows(sweep: Path) -> list[list[str]]:
    from visionlab.cli.compare import cmd_compare

    return cmd_compare([sweep], None, None, None, None)


def read_hparams(events: Path) -> tuple[dict, dict]:
    """(hyperparameters, last scalar of every tag) of a run, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    scalars = {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}
    return hparams, scalars


def test_optuna_search_runs_trials_and_reports_the_best(in_project):
    _train_in_process("hparams_search=optuna", "hydra.sweeper.n_trials=2",
                      "hydra.sweeper.sampler.n_startup_trials=1", *SMALL_DATA)
    (results,) = (in_project / "outputs" / "multirun").glob("*/*/optimization_results.yaml")
    text = results.read_text()
    assert "best_params:" in text and "optimizer.lr:" in text and "best_value:" in text
    assert len(list(results.parent.glob("[0-9]/checkpoints/last.ckpt"))) == 2
    import optuna

    storage = f"sqlite:///{results.parent / 'optuna.db'}"
    study = optuna.load_study(study_name="train", storage=storage)
    assert len(study.trials) == 2 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    # Resumed in the same sweep dir (new job dirs) up to 3 trials in all, with a trial that raises:
    # recorded as failed.
    sweep_dir = f"hydra.sweep.dir={results.parent}"
    with pytest.raises(SystemExit) as exit_info:  # every trial ran, one failed: the exit code says so
        _train_in_process("hparams_search=optuna", "hydra.sweeper.n_trials=3", sweep_dir,
                          "hydra.sweep.subdir=resumed_${hydra.job.num}", "data.batch_size=0", *SMALL_DATA)
    assert exit_info.value.code == 1
    states = [t.state for t in optuna.load_study(study_name="train", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL]
    assert json.loads((results.parent / "resumed_0" / "status.json").read_text())["status"] == "failed"


def test_the_search_space_follows_hydras_sweep_grammar_and_a_fixed_override_leaves_it():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.visionlab_optuna.sweeper import OptunaSweeper

    params = {"freeze.n": "range(1, 5)", "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
              "freeze": "choice(none, last_n)", "model.head.dropout": "interval(0.0, 0.5)",
              "data.batch_size": "range(16, 65, 16)"}
    given = ["model.head.dropout=0.25", "seed=3", "optimizer.weight_decay=choice(0, 1e-4)"]
    space, fixed = OptunaSweeper(params=params).search_space(given)
    assert space == {"freeze.n": IntDistribution(1, 4),
                     "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
                     "freeze": CategoricalDistribution(["none", "last_n"]),
                     "data.batch_size": IntDistribution(16, 64, step=16),
                     "optimizer.weight_decay": CategoricalDistribution([0, 1e-4])}
    assert fixed == ["model.head.dropout=0.25", "seed=3"]  # a fixed value takes its key out of the search


@pytest.mark.slow
def test_two_searches_at_once_share_one_study_with_no_lost_duplicated_or_extra_trials(tmp_path):
    """Two searches started together on one journal file, each in a process of its own, as SLURM
    array tasks would be (forked from this one: tests/forked.py)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "shared" / "study.log"

    def search(index: int) -> None:
        os.chdir(tmp_path)
        os.environ.update(VISIONLAB_DATA_DIR=str(tmp_path / "data"), PROJECT_ROOT=str(tmp_path))
        main(["train", "hparams_search=optuna", f"hydra.sweeper.storage=journal://{journal}",
              "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=4",
              "hydra.sweeper.sampler.n_startup_trials=1",
              f"hydra.sweep.dir={tmp_path / f'sweep_{index}'}", *SMALL_DATA])

    log = tmp_path / "searches.log"
    codes = run_forked([lambda: search(0), lambda: search(1)], log)
    assert codes == [0, 0], log.read_text()[-3000:]
    study = optuna.load_study(study_name="shared", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    ran = [len(list((tmp_path / f"sweep_{index}").glob("*/status.json"))) for index in (0, 1)]
    assert sum(ran) == 4 and min(ran) >= 1, ran  # both processes ran trials of the one study
    # each process sums up the study as it finds it when done; the last one sees every trial complete
    summaries = [yaml.safe_load((tmp_path / f"sweep_{index}" / "optimization_results.yaml").read_text())
                 for index in (0, 1)]
    assert all(summary["n_trials"] == 4 for summary in summaries)
    assert max(summary["best_value"] for summary in summaries) == study.best_value


def test_compare_on_a_folder_without_runs_says_what_it_looked_for(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "(a run directory holds .hydra/config.yaml)" in capsys.readouterr().err


def fake_run(root: Path, name: str, overrides: list[str], values: list[float],
             target: str = "ClassifierModule", monitor: str = "val/acc", mode: str = "max",
             data: str | None = None) -> Path:
    """A run folder as train.py leaves it (.hydra/, csv/metrics.csv, status.json) with ``values`` of
    ``monitor`` per epoch and the last as ``test/acc``; ``data``: the image folder it trained on."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        f"monitor: {monitor}\nmode: {mode}\nmodel:\n  _target_: visionlab.modules.x.{target}\n"
        + (f"data:\n  root: {data}\n" if data else ""))
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "csv").mkdir()
    rows = [f"{epoch},{value},\n" for epoch, value in enumerate(values)]
    rows.append(f"{len(values) - 1},,{values[-1]}\n")
    (run_dir / "csv" / "metrics.csv").write_text(f"epoch,{monitor},test/acc\n" + "".join(rows))
    (run_dir / "status.json").write_text(json.dumps({"status": "finished", "overrides": overrides}))
    (run_dir / "checkpoints").mkdir()
    return run_dir


def test_compare_groups_runs_over_seeds_as_mean_std_and_n_ranked(tmp_path, capsys):
    from visionlab.cli.compare import cmd_compare

    best = {("a", 1): 0.60, ("a", 2): 0.70, ("a", 3): 0.80, ("b", 1): 0.50, ("b", 2): 0.52, ("b", 3): 0.54}
    for (freeze, seed), value in best.items():
        fake_run(tmp_path, f"{freeze}{seed}", [f"freeze={freeze}", f"seed={seed}"], [value - 0.1, value])
    rows = cmd_compare([tmp_path], None, None, None, None)
    assert rows[0][:3] == ["#", "group (over seed)", "best val/acc"] and rows[0][-2:] == ["n", "failed"]
    assert [row[1] for row in rows[1:]] == ["freeze=a", "freeze=b"]  # ranked by the mean: 0.70 > 0.52
    assert rows[1][2] == "0.7000 ± 0.1000" and rows[2][2] == "0.5200 ± 0.0200"
    assert rows[1][-2:] == ["3", "0"]
    assert (tmp_path / "compare.md").read_text().count("±") == 4 and (tmp_path / "compare.png").is_file()
    with pytest.raises(UserError, match=r"--over lr: no run sets lr; the keys that differ between the runs: "
                                        r"freeze, seed"):
        cmd_compare([tmp_path], None, None, None, None, over="lr")


def test_compare_ranks_each_model_kind_on_its_own_metric(tmp_path, capsys):
    from visionlab.cli.compare import cmd_compare

    fake_run(tmp_path, "c1", ["freeze=a"], [0.5, 0.6])
    fake_run(tmp_path, "c2", ["freeze=b"], [0.7, 0.8])
    fake_run(tmp_path, "g1", ["model=gan", "model.loss=hinge"], [30.0, 20.0], "GANModule", "val/fid", "min")
    fake_run(tmp_path, "g2", ["model=gan", "model.loss=bce"], [25.0, 12.0], "GANModule", "val/fid", "min")
    cmd_compare([tmp_path], None, None, None, None)
    text = (tmp_path / "compare.md").read_text()
    assert "## ClassifierModule" in text and "## GANModule" in text
    classifier, gan = text.split("## GANModule")
    assert "best val/acc" in classifier and "val/fid" not in classifier
    assert "best val/fid" in gan
    assert gan.index("model.loss=bce") < gan.index("model.loss=hinge")  # the lower FID first
    assert all((tmp_path / f"compare-{kind}.png").is_file() for kind in ("GANModule", "ClassifierModule"))


def test_compare_ranks_runs_on_different_data_apart(tmp_path, capsys):
    from visionlab.cli.compare import cmd_compare

    fake_run(tmp_path, "f1", ["data.root=/data/faces", "freeze=a"], [0.5, 0.9], data="/data/faces")
    fake_run(tmp_path, "f2", ["data.root=/data/faces", "freeze=b"], [0.5, 0.6], data="/data/faces")
    fake_run(tmp_path, "t1", ["data.root=/data/textures", "freeze=a"], [0.5, 0.7], data="/data/textures")
    fake_run(tmp_path, "g1", ["model=gan"], [30.0, 20.0], "GANModule", "val/fid", "min", data="/data/faces")
    cmd_compare([tmp_path], None, None, None, None)
    text = (tmp_path / "compare.md").read_text()
    sections = {section.splitlines()[0]: section for section in text.split("## ")[1:]}
    assert set(sections) == {"ClassifierModule on /data/faces", "ClassifierModule on /data/textures",
                             "GANModule"}
    faces = sections["ClassifierModule on /data/faces"]
    assert faces.index("freeze=a") < faces.index("freeze=b") and "textures" not in faces
    assert (tmp_path / "compare-ClassifierModule-on-_data_faces.png").is_file()
    assert (tmp_path / "compare-GANModule.png").is_file()


def test_a_sweep_over_seeds_ends_with_the_best_group_as_mean_and_std():
    from visionlab.cli.sweep import summarize

    records = [{"status": "finished", "overrides": [f"freeze={f}", f"seed={s}"], "value": v}
               for f, s, v in [("a", 1, 0.6), ("a", 2, 0.8), ("b", 1, 0.9), ("b", 2, 0.5)]]
    assert summarize(records, "test/acc", "max") == (
        "sweep: 4 finished, 0 failed; best test/acc=0.7000 ± 0.1414 over 2 seeds (freeze=a)")


def test_compare_ranks_runs_without_a_monitor_on_a_val_metric_and_skips_those_with_none(tmp_path, capsys):
    from visionlab.cli.compare import cmd_compare

    fake_run(tmp_path, "c1", ["freeze=a"], [0.5, 0.6])
    fake_run(tmp_path, "g1", ["model=gan"], [0.4, 0.3], "GANModule", "val/js", "min")
    (tmp_path / "g1" / ".hydra" / "config.yaml").write_text(
        "monitor: null\nmode: max\nmodel:\n  _target_: visionlab.modules.gan.GANModule\n")
    fake_run(tmp_path, "l1", ["model=lapgan"], [1.0], "LAPGANModule", "train/g_loss", "min")
    (tmp_path / "l1" / ".hydra" / "config.yaml").write_text(
        "monitor: null\nmode: max\nmodel:\n  _target_: visionlab.modules.lapgan.LAPGANModule\n")
    cmd_compare([tmp_path], None, None, None, None)
    text = (tmp_path / "compare.md").read_text()
    assert "## GANModule" in text and "best val/js" in text and "LAPGANModule" not in text
    assert "LAPGANModule: 1 run(s) without a monitor or val/* metric, not ranked" in capsys.readouterr().err


def test_a_runs_epochs_leave_out_its_final_summary():
    from visionlab.inference.runs import RunRecord

    record = RunRecord(Path("run"), [], "val/fid", "min", 2,
                       curves={"val/fid": [(0, 60.0), (1, 59.9)], "run/epochs": [(8, 1.0)]})
    assert record.epochs == 2  # not 9: a GAN's summary lands on its last optimizer step


def test_compare_groups_by_values_and_leaves_out_what_cannot_change_results(tmp_path, capsys):
    from visionlab.cli.compare import cmd_compare

    fake_run(tmp_path, "a1", ["optimizer.lr=1e-2", "seed=1", "logger=[tensorboard,mlflow]"], [0.5, 0.6])
    fake_run(tmp_path, "a2", ["optimizer.lr=0.01", "seed=2", "callbacks.progress_bar=null"], [0.6, 0.8])
    fake_run(tmp_path, "b1", ["optimizer.lr=1e-3", "seed=1", "paths.data_dir=/elsewhere"], [0.3, 0.4])
    rows = cmd_compare([tmp_path], None, None, None, None)
    assert [(row[1], row[2], row[-2]) for row in rows[1:]] == [
        ("optimizer.lr=0.01", "0.7000 ± 0.1414", "2"),  # 1e-2 and 0.01 are one setting; logger is none
        ("optimizer.lr=0.001", "0.4000", "1")]  # one run: no spread to show
    top = cmd_compare([tmp_path], None, None, 1, None)
    assert top[0][1] == "group (over seed) (best 1 of 2 groups)" and top[1][1] == "optimizer.lr=0.01"
    every = cmd_compare([tmp_path], None, None, None, None, over="none")  # each run on its own row
    assert [row[1] for row in every[1:]] == ["optimizer.lr=0.01,seed=2", "optimizer.lr=0.01,seed=1",
                                            "optimizer.lr=0.001,seed=1"]
    assert "logger" not in (tmp_path / "compare.md").read_text()


def test_compare_names_a_run_alone_of_its_kind_by_its_overrides_not_its_folder(tmp_path):
    from visionlab.cli.compare import cmd_compare

    fake_run(tmp_path, "c1", ["freeze=none"], [0.5, 0.6])
    fake_run(tmp_path, "c2", ["freeze=last_n"], [0.7, 0.8])
    fake_run(tmp_path, "14-22-05", ["experiment=dcgan_shapes"], [30.0, 20.0], "GANModule", "val/fid", "min")
    cmd_compare([tmp_path], None, None, None, None)
    gan = (tmp_path / "compare.md").read_text().split("## GANModule")[1]
    assert "experiment=dcgan_shapes" in gan and "14-22-05" not in gan


def test_a_sweep_over_kinds_ranks_each_job_by_its_own_metric():
    from visionlab.cli.sweep import summarize

    records = [{"status": "finished", "overrides": [f"experiment={e}"], "value": v, "metric": m, "mode": d}
               for e, v, m, d in [("shapes_fine_tune", 0.71, "test/acc", "max"),
                                  ("course_cats_dogs_scratch", 0.62, "test/acc", "max"),
                                  ("srgan_shapes", 29.5, "val/psnr", "max"),
                                  ("dcgan_shapes", 16.0, "val/fid", "min"),
                                  ("lapgan_shapes", 21.0, "val/fid", "min")]]
    assert summarize(records, "test/acc", "max") == (
        "sweep: 5 finished, 0 failed; ranked per metric: best test/acc=0.7100 (experiment=shapes_fine_tune); "
        "best val/psnr=29.5000 (experiment=srgan_shapes); best val/fid=16.0000 (experiment=dcgan_shapes)")


def test_compare_at_a_time_ranks_runs_by_what_each_reached_by_then(tmp_path):
    """Two GAN runs: the slow one is better per evaluation, the fast one at equal training time."""
    from visionlab.cli.compare import cmd_compare

    for loss, fids, seconds in (("hinge", [40.0, 30.0, 20.0, 15.0], [100, 200, 300, 400]),
                                ("bce", [35.0, 18.0, 10.0, 8.0], [250, 500, 750, 1000])):
        run_dir = fake_run(tmp_path, loss, [f"model.loss={loss}"], fids, "GANModule", "val/fid", "min")
        rows = "".join(f"{epoch},{fid},,{t}\n"
                       for epoch, (fid, t) in enumerate(zip(fids, seconds, strict=True)))
        (run_dir / "csv" / "metrics.csv").write_text("epoch,val/fid,test/acc,time/train_seconds\n" + rows)
    best = cmd_compare([tmp_path], None, None, None, None)
    assert [(row[1], row[2]) for row in best[1:]] == [("model.loss=bce", "8.0000"),
                                                      ("model.loss=hinge", "15.0000")]
    at_450 = cmd_compare([tmp_path], None, None, None, None, at_time=450)
    assert at_450[0][2] == "val/fid at 450 s"
    assert [(row[1], row[2], row[3]) for row in at_450[1:]] == [("model.loss=hinge", "15.0000", "3"),
                                                                ("model.loss=bce", "35.0000", "0")]
    at_150 = cmd_compare([tmp_path], None, None, None, None, at_time=150)  # bce had not been evaluated yet
    assert [(row[1], row[2]) for row in at_150[1:]] == [("model.loss=hinge", "40.0000"),
                                                        ("model.loss=bce", "-")]
    assert (tmp_path / "compare.png").is_file()
