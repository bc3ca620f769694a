"""simulations.bench at toy sizes: the tables it prints (not the timings, which are
machine-dependent and never asserted)."""

from simulations import bench, registry, report


def test_engine_table_and_reproduction_time_per_paper(tmp_path, capsys):
    for cid, label, seconds in (("covnoise.negative_control", "0", 2.0), ("covnoise.frobenius", "0", 3.0),
                                ("selfdistill.collapse", "0", 1.5), ("selfdistill.collapse", "0.1", 0.5)):
        claim = registry.get_claims([cid])[0]
        report.store_evidence(tmp_path, claim, label, "h", {}, {"x": 1.0}, seconds=seconds)
    out = bench.main(n_seeds=16, n_steps=10, d=4, loop_seeds=2, parts=("engine",), devices=(),
                     evidence=tmp_path)
    text = capsys.readouterr().out
    assert "| engine (jit, vmap over seeds, lax.scan) |" in text and "% of it" in text
    rows = {r["paper"]: r for r in out["reproduction"]}
    assert (rows["covnoise"]["claims"], rows["covnoise"]["keys"], rows["covnoise"]["seconds"]) == (2, 1, 5.0)
    assert (rows["self_distillation"]["claims"], rows["self_distillation"]["keys"]) == (1, 2)
    assert "| all | 3 | 2 | 7.0 |" in text


def test_device_scaling_runs_one_process_per_count_and_two_cooperating_processes(capsys):
    rows = bench.device_scaling((2,), n_seeds=8, n_steps=10, d=4)
    assert [(r["devices"], r["processes"]) for r in rows] == [(2, 1), (2, 2)]
    assert all(r["seconds"] > 0 and r["trajectory_steps"] == 80 for r in rows)
