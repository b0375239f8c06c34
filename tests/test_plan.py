"""`finecap plan`: the arithmetic on a hand-worked example, the bottleneck, strict rates files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finecap.cli import main
from finecap.plan import PlanError, Rates, load_rates, make_plan, measured_rates
from finecap.typed_config import ConfigError, build

REPO = Path(__file__).resolve().parent.parent

# Hand-worked (docs/plan.md), 7200 images on 1 node with 2 GPUs and 8 CPUs:
#   prepare  1 CPU, 10 img/s                          -> CPU-s/img 1/10            = 0.1
#   caption  0.5 GPU + 1 CPU, 4 img/s, half the input -> GPU-s/img 0.5*0.5/4      = 0.0625, CPU-s/img 0.5/4 = 0.125
#   regions  1 GPU, 6 regions/s, half, 3 regions/img  -> GPU-s/img 0.5*3*1/6      = 0.25
#   dedup    1 CPU, 100 img/s, after the build        -> 7200 * 0.01 / 8 CPUs     = 9 s
# GPU pace 2 / 0.3125 = 6.4 img/s, CPU pace 8 / 0.225 = 35.6: the GPUs bind, regions uses most.
# Wall 7200 / 6.4 = 1125 s + 9 s; busy GPU-hours 7200 * 0.3125 / 3600 = 0.625.
EXAMPLE = {
    "label": "hand-worked example",
    "node": {"gpus": 2, "cpus": 8},
    "stages": {
        "prepare": {"items_per_s": 10, "cpus": 1},
        "caption": {"items_per_s": 4, "gpus": 0.5, "cpus": 1, "fraction": 0.5},
        "regions": {"items_per_s": 6, "gpus": 1, "fraction": 0.5, "items_per_image": 3},
        "dedup": {"items_per_s": 100, "cpus": 1, "after_build": True},
    },
}


def example() -> Rates:
    return build(Rates, EXAMPLE)


def test_hand_worked_example():
    plan = make_plan(example(), images=7200)
    stages = {s.name: s for s in plan.stages}
    assert stages["caption"].gpu_s_per_image == pytest.approx(0.0625)
    assert stages["regions"].gpu_s_per_image == pytest.approx(0.25)
    assert stages["prepare"].cpu_s_per_image == pytest.approx(0.1)
    assert plan.images_per_s == pytest.approx(6.4)
    assert (plan.binding, plan.bottleneck) == ("gpus", "regions")
    assert plan.stream_seconds == pytest.approx(1125)
    assert plan.after_seconds == pytest.approx(9)
    assert plan.wall_seconds == pytest.approx(1134)
    assert plan.gpu_hours_busy == pytest.approx(0.625)
    assert plan.gpu_hours == pytest.approx(2 * 1134 / 3600)
    # GPUs balanced: 0.8 caption workers (0.4 GPU) and 1.6 region workers (1.6 GPU) use both GPUs.
    assert stages["caption"].workers == pytest.approx(0.8)
    assert stages["regions"].workers == pytest.approx(1.6)
    assert stages["caption"].images_per_s == pytest.approx(stages["regions"].images_per_s)


def test_more_nodes_divide_the_wall_time():
    one, four = make_plan(example(), 7200), make_plan(example(), 7200, nodes=4)
    assert four.stream_seconds == pytest.approx(one.stream_seconds / 4)
    assert four.gpu_hours_busy == pytest.approx(one.gpu_hours_busy)


def test_bottleneck_moves_to_the_cpus_when_they_are_short():
    plan = make_plan(example(), 7200, cpus_per_node=1)
    assert plan.binding == "cpus"
    assert plan.bottleneck == "caption"  # 0.125 CPU-s per image against prepare's 0.1
    assert plan.images_per_s == pytest.approx(1 / 0.225)


def test_a_gpu_stage_without_gpus_is_refused():
    with pytest.raises(PlanError, match="caption"):
        make_plan(example(), 100, gpus_per_node=0)


def _write(tmp_path, data) -> Path:
    path = tmp_path / "rates.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["stages"]["caption"].update(gpu=1), "stages.caption.gpu"),
        (lambda d: d["stages"]["caption"].update(items_per_s="fast"), "stages.caption.items_per_s"),
        (lambda d: d["stages"]["caption"].update(items_per_s=0), "stages.caption.items_per_s"),
        (lambda d: d["stages"]["regions"].update(fraction=1.5), "stages.regions.fraction"),
        (lambda d: d["stages"]["prepare"].update(cpus=0), "stages.prepare"),
        (lambda d: d["stages"]["prepare"].pop("items_per_s"), "stages.prepare.items_per_s"),
        (lambda d: d.pop("label"), "label"),
        (lambda d: [stage.update(after_build=True) for stage in d["stages"].values()], "stages"),
    ],
)
def test_bad_rates_file_names_the_key(tmp_path, change, key):
    data = json.loads(json.dumps(EXAMPLE))
    change(data)
    with pytest.raises(ConfigError) as err:
        load_rates(_write(tmp_path, data))
    assert key in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_rates_file_is_one_line_naming_the_key(tmp_path, capsys):
    data = json.loads(json.dumps(EXAMPLE))
    data["stages"]["detect"] = {"items_per_s": 3, "gpus": 1, "regions_per_image": 4}
    assert main(["plan", "--images", "10", "--rates", str(_write(tmp_path, data))]) == 2
    err = capsys.readouterr().err.strip()
    assert "stages.detect.regions_per_image" in err and "\n" not in err


def test_cli_json_is_the_last_line(tmp_path, capsys):
    path = _write(tmp_path, EXAMPLE)
    assert main(["plan", "--images", "7200", "--rates", str(path), "--nodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["bottleneck"], result["nodes"]) == ("regions", 2)
    assert result["stream_seconds"] == pytest.approx(1125 / 2)
    assert main(["plan", "--images", "7200", "--rates", str(path)]) == 0
    assert "bottleneck: regions" in capsys.readouterr().out


def test_example_gpu_rates_are_valid_and_labelled_assumed():
    rates = load_rates(REPO / "benchmarks" / "rates" / "example-gpu.yaml")
    assert not rates.measured and "ASSUMED" in rates.label
    assert make_plan(rates, 1_000_000).bottleneck in rates.stages


def test_measured_defaults_come_from_recorded_results(tmp_path):
    (tmp_path / "caption_stage.json").write_text(json.dumps(
        {"figures": {"caption_stage": {"images_per_s": 8.0}}, "machine": {"cpus": 2}}))
    rates = measured_rates(tmp_path)
    assert rates.measured and "tiny models" in rates.label
    assert rates.stages["caption"].items_per_s == 8.0 and rates.node.cpus == 2
    with pytest.raises(ConfigError, match="--rates"):
        measured_rates(tmp_path / "empty")


def test_training_figures_are_checked_and_shown_beside_the_plan(tmp_path, capsys):
    data = json.loads(json.dumps(EXAMPLE))
    data["training"] = {"stage2": {"samples_per_s": 100.0, "gpus": 1, "mfu": 0.4, "note": "measured here"}}
    path = _write(tmp_path, data)
    assert main(["plan", "--images", "7200", "--rates", str(path)]) == 0
    out = capsys.readouterr().out
    # 10^6 samples / 100 per s on 1 GPU = 10^4 s = 2.78 GPU-hours
    assert "  stage2: 100.0 samples/s on 1 GPU, MFU 40.0%; 2.78 GPU-hours per million samples (measured here)" in out
    assert main(["plan", "--images", "7200", "--rates", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["training"]["stage2"]["gpu_hours_per_million_samples"] == pytest.approx(1e6 / 100 / 3600)
    assert "training" not in "\n".join(format_lines(example()))  # no section without figures


@pytest.mark.parametrize(("value", "key"), [({"samples_per_s": 0}, "training.stage2.samples_per_s"),
                                            ({"samples_per_s": 1, "mfu": 1.5}, "training.stage2.mfu"),
                                            ({"samples_per_s": 1, "gpus": 0}, "training.stage2.gpus")])
def test_bad_training_figures_name_the_key(tmp_path, value, key):
    data = json.loads(json.dumps(EXAMPLE))
    data["training"] = {"stage2": value}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_rates(_write(tmp_path, data))


def format_lines(rates: Rates) -> list[str]:
    from finecap.plan import format_plan

    return format_plan(make_plan(rates, 7200), rates)
