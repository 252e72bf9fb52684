"""The report's arithmetic and claim logic on hand-built runs (no binary needed): the network
model (the trainer's modeled times and the fallback for older databases), modeled time,
per-step averages, the target BLEU, the verdicts, colours, manifests."""

import unittest

from reports import claims
from reports.db import Run
from reports.network import DEFAULT_NETWORK, NetworkModel as LinkModel, comm_seconds_per_step, \
    modeled_step_ms, network_of_spec
from reports.style import METHOD_COLORS, SPARE_COLORS, Styler, method_colors
from reports.summary import RunSummary, _weighted_mean, default_target_bleu, group_configs, \
    summarize
from reports.tables import _expected_runs, network_table


def fake_run(run_id, method, seed, knobs=None, test_bleu=None, valid=(), k_curve=None,
             metrics=None, workers=4, workers_per_node=2):
    spec = {"method": method, "size": "tiny", "seed": seed, "knobs": dict(knobs or {}),
            "workers": workers, "workers_per_node": workers_per_node, "sweep": ""}
    evals = [{"step": s, "wall_s": w, "split": "valid", "lang": "all", "k": 0, "bleu": b,
              "chrf": None, "signature": "sig", "decoding": "{}", "n_sentences": 10}
             for s, w, b in valid]
    last = valid[-1][0] if valid else 100
    if test_bleu is not None:
        evals.append({"step": last, "wall_s": 1.0, "split": "test", "lang": "all", "k": 0,
                      "bleu": test_bleu, "chrf": None, "signature": "sig", "decoding": "{}",
                      "n_sentences": 10})
    for k, b in (k_curve or {}).items():
        evals.append({"step": last, "wall_s": 1.0, "split": "test", "lang": "all", "k": k,
                      "bleu": b, "chrf": None, "signature": "sig", "decoding": "{}",
                      "n_sentences": 10})
    return Run(id=run_id, sweep_id="", method=method, size="tiny", seed=seed, spec=spec,
               status="finished", started_at="", ended_at="", exit_code=0, error="", host="h",
               device="cpu", world_size=1, threads=1, libs={}, params_total=1000,
               params_active=500, metrics=dict(metrics or {}), evals=evals)


def check(runs, target=None):
    configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
    results = claims.check(configs, target, lambda pairs: claims.NO_OUTPUTS)
    return {r.claim.id: r for r in results}


class NetworkModel(unittest.TestCase):
    def test_hand_computed_seconds(self):
        # 100 Gb/s = 12.5e9 bytes/s; 150 GB/s; 5 us and 2 us per all-to-all.
        self.assertAlmostEqual(comm_seconds_per_step(DEFAULT_NETWORK, 12.5e9, 0, 0, True), 1.0)
        self.assertAlmostEqual(comm_seconds_per_step(DEFAULT_NETWORK, 0, 150e9, 0, False), 1.0)
        self.assertAlmostEqual(comm_seconds_per_step(DEFAULT_NETWORK, 0, 0, 1000, True), 0.005)
        self.assertAlmostEqual(comm_seconds_per_step(DEFAULT_NETWORK, 0, 0, 1000, False), 0.002)
        self.assertAlmostEqual(
            comm_seconds_per_step(DEFAULT_NETWORK, 25e9, 75e9, 200, True), 2 + 0.5 + 0.001)

    def test_modeled_extra_is_piecewise_linear_then_extrapolated(self):
        s = RunSummary(run=None, extra_points=[(10, 1.0), (20, 3.0)])
        self.assertAlmostEqual(s.modeled_extra(0), 0.0)
        self.assertAlmostEqual(s.modeled_extra(5), 0.5)
        self.assertAlmostEqual(s.modeled_extra(15), 2.0)
        self.assertAlmostEqual(s.modeled_extra(20), 3.0)
        self.assertAlmostEqual(s.modeled_extra(30), 5.0)  # last window's 0.2 s per step
        self.assertAlmostEqual(s.modeled_seconds(15, 7.0), 9.0)

    def test_summarize_accumulates_each_window(self):
        # Two windows of 10 steps: 12.5e6 and 25e6 other-node wire bytes per step, 4 calls.
        m = {"comm.wire_other_node_bytes": [(10, 1.0, 12.5e6), (20, 2.0, 25e6)],
             "comm.wire_same_node_bytes": [(10, 1.0, 0.0), (20, 2.0, 0.0)],
             "comm.calls": [(10, 1.0, 4.0), (20, 2.0, 4.0)]}
        s = summarize(fake_run("r", "switch", 1, metrics=m), DEFAULT_NETWORK)
        per_call = 5e-6
        expected = 10 * (1e-3 + 4 * per_call) + 10 * (2e-3 + 4 * per_call)
        self.assertAlmostEqual(s.modeled_extra(20), expected, places=15)

    def test_summarize_without_modeled_metrics_is_the_fallback(self):
        m = {"comm.wire_other_node_bytes": [(10, 1.0, 12.5e6)], "step_ms": [(10, 1.0, 100.0)]}
        s = summarize(fake_run("r", "switch", 1, metrics=m), DEFAULT_NETWORK)
        self.assertEqual(s.comm_model, "report")
        # 12.5e6 B / 12.5e9 B/s = 1 ms per step, no calls: modeled step 100 + 1 = 101 ms.
        self.assertAlmostEqual(s.modeled_comm_ms, 1.0)
        self.assertAlmostEqual(s.step_modeled_ms, 101.0)

    def test_trainer_model_replaces_measured_by_modeled_communication(self):
        # Window 1 (10 steps): step 100 ms of which 30 ms measured communication, modeled
        # 5 ms: modeled step = 70 + 5 = 75 ms, 25 ms less than measured per step.
        # Window 2 (10 steps): step 120 ms, 20 ms measured, 50 ms modeled: 100 + 50 = 150 ms,
        # 30 ms more. Wire bytes are ignored when the trainer modeled the run.
        m = {"step_ms": [(10, 1.0, 100.0), (20, 2.2, 120.0)],
             "comm.measured_ms": [(10, 1.0, 30.0), (20, 2.2, 20.0)],
             "comm.modeled_ms": [(10, 1.0, 5.0), (20, 2.2, 50.0)],
             "comm.wire_other_node_bytes": [(10, 1.0, 12.5e9), (20, 2.2, 12.5e9)]}
        s = summarize(fake_run("r", "switch", 1, metrics=m), DEFAULT_NETWORK)
        self.assertEqual(s.comm_model, "trainer")
        self.assertAlmostEqual(s.modeled_extra(10), 10 * -0.025)
        self.assertAlmostEqual(s.modeled_extra(20), 10 * -0.025 + 10 * 0.030)
        self.assertAlmostEqual(s.modeled_seconds(20, 2.2), 2.2 - 0.25 + 0.3)
        self.assertAlmostEqual(s.modeled_comm_ms, 27.5)  # (5 + 50) / 2, windows of 10 steps
        self.assertAlmostEqual(s.step_modeled_ms, 112.5)  # (75 + 150) / 2

    def test_trainer_step_modeled_ms_is_preferred(self):
        # step_modeled_ms 80 against step_ms 100: 20 ms less per step, whatever the others say.
        m = {"step_ms": [(10, 1.0, 100.0)], "comm.measured_ms": [(10, 1.0, 30.0)],
             "comm.modeled_ms": [(10, 1.0, 5.0)], "step_modeled_ms": [(10, 1.0, 80.0)]}
        s = summarize(fake_run("r", "switch", 1, metrics=m), DEFAULT_NETWORK)
        self.assertAlmostEqual(s.modeled_extra(10), -0.2)
        self.assertAlmostEqual(s.step_modeled_ms, 80.0)
        self.assertEqual(modeled_step_ms(100.0, 30.0, 5.0), 75.0)
        self.assertEqual(modeled_step_ms(100.0, 30.0, 5.0, 80.0), 80.0)
        self.assertIsNone(modeled_step_ms(None, 30.0, 5.0))

    def test_link_parameters_come_from_the_run_spec(self):
        # Defaults when the spec leaves them out (it does when they are the defaults).
        self.assertEqual(network_of_spec({}), DEFAULT_NETWORK)
        # 400 Gb/s = 50e9 B/s; 2400 Gb/s = 300e9 B/s; 1 us; 0.5 us.
        net = network_of_spec({"inter_node_gbps": 400, "intra_node_gbps": 2400,
                               "inter_node_latency_us": 1, "intra_node_latency_us": 0.5})
        self.assertEqual(net, LinkModel(inter_node_bytes_per_s=50e9, intra_node_bytes_per_s=300e9,
                                        inter_node_latency_s=1e-6, intra_node_latency_s=0.5e-6))
        m = {"step_ms": [(10, 1.0, 100.0)], "comm.measured_ms": [(10, 1.0, 30.0)],
             "comm.modeled_ms": [(10, 1.0, 5.0)]}
        fast = fake_run("f", "switch", 1, metrics=m)
        fast.spec["inter_node_gbps"] = 400
        old = fake_run("o", "switch", 2, metrics={"comm.calls": [(10, 1.0, 4.0)]})
        summaries = [summarize(r, DEFAULT_NETWORK) for r in (fast, old)]
        self.assertEqual(summaries[0].network.inter_node_bytes_per_s, 50e9)
        rows = {r[0]: r for r in network_table(DEFAULT_NETWORK, None, summaries).rows}
        self.assertEqual(rows["modeled by the trainer"][1], "1 of 2 runs")
        self.assertEqual(rows["modeled by this report"][1], "1 of 2 runs")
        self.assertEqual(rows["other link parameters"][1],
                         "1200 / 400 Gb/s, 2 / 5 us (intra / inter)")
        self.assertIn("f", rows["other link parameters"][2])
        self.assertEqual(rows["inter-node bandwidth"][1], "100 Gb/s")

    def test_weighted_mean_weights_windows_by_their_steps(self):
        self.assertAlmostEqual(_weighted_mean([(10, 0, 1.0), (30, 0, 4.0)]), 3.0)
        self.assertIsNone(_weighted_mean([]))


class Target(unittest.TestCase):
    def test_target_is_a_fraction_of_the_median(self):
        runs = [fake_run(str(i), m, 1, valid=[(10, 1.0, b)])
                for i, (m, b) in enumerate([("a", 10.0), ("b", 20.0), ("c", 40.0)])]
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        self.assertEqual(default_target_bleu(configs), 16.0)
        self.assertEqual(default_target_bleu(configs[:2]), 12.0)  # median of 10 and 20
        zero = group_configs([summarize(fake_run("z", "a", 1, valid=[(10, 1.0, 0.0)]),
                                        DEFAULT_NETWORK)])
        self.assertIsNone(default_target_bleu(zero))

    def test_reach_is_the_first_validation_at_or_above(self):
        s = summarize(fake_run("r", "switch", 1, valid=[(10, 5.0, 1.0), (20, 9.0, 3.0),
                                                        (30, 14.0, 2.0)]), DEFAULT_NETWORK)
        self.assertEqual(s.reach(3.0), (20, 9.0, 9.0))
        self.assertIsNone(s.reach(3.5))


class Claims(unittest.TestCase):
    def test_thor_beats_switch_paired_by_seed(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("t2", "thor", 2, test_bleu=14.0),
                fake_run("s1", "switch", 1, test_bleu=11.0),
                fake_run("s2", "switch", 2, test_bleu=10.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        # Paired differences +1 and +4: mean +2.5.
        self.assertIn("+2.50 BLEU", r.measured)
        self.assertIn("2 seeds paired", r.measured)
        self.assertEqual(r.significance, claims.NO_OUTPUTS)

    def test_a_claim_that_does_not_reproduce_says_so(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=9.0), fake_run("s1", "switch", 1,
                                                                   test_bleu=11.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.NOT_SUPPORTED)
        self.assertIn("-2.00 BLEU", r.measured)
        self.assertIn("0 of 1 comparisons", r.measured)

    def test_runs_with_other_settings_are_not_compared(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0, workers=1, workers_per_node=1),
                fake_run("s1", "switch", 1, test_bleu=11.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.NOT_MEASURED)
        self.assertIn("thor and switch runs", r.missing)
        self.assertIn("differ in workers 1 vs 4, workers_per_node 1 vs 2", r.missing)

    def test_gating_dropout_bytes_ratio_against_one_minus_p(self):
        def runs(gd_bytes):
            return [fake_run("g", "gating_dropout", 1, knobs={"p": "0.3"},
                             metrics={"comm.other_node_bytes": [(10, 1.0, gd_bytes)]}),
                    fake_run("s", "switch", 1,
                             metrics={"comm.other_node_bytes": [(10, 1.0, 1e6)]})]
        ok = check(runs(0.7e6))["gd.bytes"]
        self.assertEqual(ok.verdict, claims.SUPPORTED)
        self.assertIn("ratio 0.700", ok.measured)
        bad = check(runs(0.9e6))["gd.bytes"]
        self.assertEqual(bad.verdict, claims.NOT_SUPPORTED)

    def test_gating_dropout_default_p(self):
        # p = -1 stands for the method's default: 0.3 (0.2 with gate_expert_drop).
        runs = [fake_run("g", "gating_dropout", 1, knobs={"p": "-1"},
                         metrics={"comm.other_node_bytes": [(10, 1.0, 0.7e6)]}),
                fake_run("s", "switch", 1, metrics={"comm.other_node_bytes": [(10, 1.0, 1e6)]})]
        r = check(runs)["gd.bytes"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        self.assertIn("1-p = 0.70", r.measured)

    def test_gating_dropout_needs_its_base_router_at_the_same_capacity_factor(self):
        runs = [fake_run("g", "gating_dropout", 1, knobs={"p": "0.3", "capacity_factor": "1.0"},
                         metrics={"comm.other_node_bytes": [(10, 1.0, 0.7e6)]}),
                fake_run("s", "switch", 1, knobs={"capacity_factor": "1.25"},
                         metrics={"comm.other_node_bytes": [(10, 1.0, 1e6)]})]
        r = check(runs)["gd.bytes"]
        self.assertEqual(r.verdict, claims.NOT_MEASURED)
        self.assertIn("differ in capacity_factor 1.0 vs 1.25", r.missing)

    def test_smoe_monotone_in_k(self):
        up = check([fake_run("m", "smoe_dropout", 1, k_curve={1: 5.0, 2: 6.0, 4: 7.0})])
        self.assertEqual(up["smoe.monotone_k"].verdict, claims.SUPPORTED)
        bumpy = check([fake_run("m", "smoe_dropout", 1, k_curve={1: 5.0, 2: 7.0, 4: 6.0})])
        self.assertEqual(bumpy["smoe.monotone_k"].verdict, claims.NOT_SUPPORTED)
        none = check([fake_run("m", "smoe_dropout", 1, test_bleu=3.0)])
        self.assertEqual(none["smoe.monotone_k"].verdict, claims.NOT_MEASURED)

    def test_time_to_target_when_only_one_side_reaches_it(self):
        runs = [fake_run("s", "switch", 1, knobs={"capacity_factor": "1.25"},
                         valid=[(10, 5.0, 1.0), (20, 10.0, 4.0)]),
                fake_run("g", "gshard", 1, knobs={"capacity_factor": "1.25"},
                         valid=[(10, 6.0, 1.0), (20, 12.0, 2.0)])]
        r = check(runs, target=3.0)["switch.time"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        self.assertIn("only switch has a value", r.measured)
        # Different capacity factors are not compared for this claim.
        runs[1].spec["knobs"]["capacity_factor"] = "2.0"
        self.assertEqual(check(runs, target=3.0)["switch.time"].verdict, claims.NOT_MEASURED)

    def test_trend_over_experts(self):
        runs = []
        for i, (e, b) in enumerate([(2, 5.0), (4, 6.0), (8, 8.0)]):
            r = fake_run(f"r{i}", "switch", 1, test_bleu=b)
            r.spec["num_experts"] = e
            runs.append(r)
        r = check(runs)["switch.experts"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        self.assertIn("2: 5.00, 4: 6.00, 8: 8.00 (rising)", r.measured)

    def test_every_claim_has_a_row(self):
        results = check([fake_run("s", "switch", 1, test_bleu=1.0)])
        self.assertEqual(sorted(results), sorted(c.id for c in claims.CLAIMS))
        for r in results.values():
            self.assertEqual(r.verdict, claims.NOT_MEASURED, r.claim.id)
            self.assertTrue(r.missing, r.claim.id)


class Colours(unittest.TestCase):
    def test_a_method_keeps_its_colour_whatever_else_is_in_the_sweep(self):
        self.assertEqual(method_colors(["switch"])["switch"],
                         method_colors(["thor", "switch", "gshard"])["switch"])
        self.assertEqual(len(set(METHOD_COLORS.values())), len(METHOD_COLORS))
        new = method_colors(["zeta", "alpha", "switch"])
        self.assertEqual(new["alpha"], SPARE_COLORS[0])
        self.assertEqual(new["zeta"], SPARE_COLORS[1])

    def test_variants_share_the_colour_but_not_the_line(self):
        runs = [fake_run("a", "switch", 1, knobs={"capacity_factor": "1.0"}),
                fake_run("b", "switch", 1, knobs={"capacity_factor": "2.0"})]
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        styler = Styler(configs)
        a, b = (styler.line(c) for c in configs)
        self.assertEqual(a["color"], b["color"])
        self.assertNotEqual(a["linestyle"], b["linestyle"])
        self.assertEqual([c.label for c in configs], ["switch cf=1.0", "switch cf=2.0"])


class Manifests(unittest.TestCase):
    def test_simple_matrix_expands(self):
        text = '[sweep]\nname = "x"\n[matrix]\nmethod = ["switch", "thor"]\nseed = [1, 2]\n'
        self.assertEqual(_expected_runs(text), [("switch", "tiny", 1), ("switch", "tiny", 2),
                                                ("thor", "tiny", 1), ("thor", "tiny", 2)])

    def test_richer_manifests_are_left_to_the_sweep_runner(self):
        self.assertIsNone(_expected_runs('include = "base.toml"\n[matrix]\nmethod = ["a"]\n'))
        self.assertIsNone(_expected_runs('[matrix]\nmethod = ["a"]\nlr = [1.0, 2.0]\n'))
        self.assertIsNone(_expected_runs("not toml ["))


if __name__ == "__main__":
    unittest.main()
