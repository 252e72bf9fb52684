"""The report's arithmetic and claim logic on hand-built runs (no binary needed): the network
model (the trainer's modeled times and the fallback for older databases), modeled time,
per-step averages, the target BLEU, the verdicts, colours, manifests."""

import os
import unittest

import math

from reports import claims, stats
from reports.bleu_test import BleuTest
from reports.db import Run
from reports.network import DEFAULT_NETWORK, NetworkModel as LinkModel, comm_seconds_per_step, \
    modeled_step_ms, network_of_spec
from reports.style import METHOD_COLORS, SPARE_COLORS, Styler, method_colors
from reports.summary import RunSummary, Stat, _weighted_mean, aggregate_curve, \
    default_target_bleu, group_configs, summarize
from reports.tables import _expected_runs, configs_table, network_table


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


def no_test(pairs):
    return BleuTest(None, note=claims.NO_OUTPUTS)


def check(runs, target=None, bleu_test=no_test, alpha=0.05):
    configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
    results = claims.check(configs, target, bleu_test, alpha=alpha)
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

    def test_modeled_compute_on_a_device_profile(self):
        # The lead's modeled cluster time: step_modeled_ms = compute_modeled_ms +
        # comm.modeled_ms (60 + 5), with nothing of this machine's step_ms (100) in it.
        m = {"step_ms": [(10, 1.0, 100.0)], "comm.measured_ms": [(10, 1.0, 30.0)],
             "comm.modeled_ms": [(10, 1.0, 5.0)], "compute_modeled_ms": [(10, 1.0, 60.0)],
             "flops_per_step": [(10, 1.0, 1e12)], "step_modeled_ms": [(10, 1.0, 65.0)]}
        run = fake_run("h", "switch", 1, metrics=m)
        run.spec.update(device_profile="h100", device_efficiency=0.4)
        s = summarize(run, DEFAULT_NETWORK)
        self.assertTrue(s.compute_modeled)
        self.assertEqual(s.time_basis(), "modeled on cluster: h100 at 0.4 efficiency + "
                                         "modeled network")
        self.assertAlmostEqual(s.step_modeled_ms, 65.0)
        self.assertAlmostEqual(s.modeled_seconds(10, 1.0), 1.0 + 10 * (65.0 - 100.0) / 1000)
        old = summarize(fake_run("o", "switch", 2, metrics={"step_ms": [(10, 1.0, 100.0)],
                                                            "comm.measured_ms": [(10, 1.0, 30.0)],
                                                            "comm.modeled_ms": [(10, 1.0, 5.0)]}),
                        DEFAULT_NETWORK)
        self.assertEqual(old.time_basis(), "compute measured on this machine + modeled network")
        rows = {r[0]: r for r in network_table(DEFAULT_NETWORK, None, [s, old]).rows}
        self.assertEqual(rows["compute modeled"][1], s.time_basis())
        self.assertIn("1 of 2 runs", rows["compute measured"][2])

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


def fixed_p(by_first_run):
    """A BLEU test that returns, for pairs whose first A run is `id`, p = by_first_run[id]."""
    def test(pairs):
        p = by_first_run.get(pairs[0][0][0].id)
        if p is None:
            return BleuTest(None, note=claims.NO_OUTPUTS)
        return BleuTest(p, bleu_a=1.0, bleu_b=0.0, sentences=10, note="stub")
    return test


def step_runs(ec_ms, gs_ms):
    """expert_choice and gshard runs with these measured ms per step, seed by seed."""
    runs = []
    for i, (a, b) in enumerate(zip(ec_ms, gs_ms)):
        runs.append(fake_run(f"e{i}", "expert_choice", i + 1, knobs={"capacity_factor": "2.0"},
                             metrics={"step_ms": [(10, 1.0, float(a))]}))
        runs.append(fake_run(f"g{i}", "gshard", i + 1,
                             metrics={"step_ms": [(10, 1.0, float(b))]}))
    return runs


class Statistics(unittest.TestCase):
    def test_sign_flip_p_counts_sign_patterns(self):
        # 3 seeds, all +1: only the all-plus pattern reaches the observed sum 3: 1 / 8.
        self.assertEqual(stats.sign_flip_p([1, 1, 1]), 1 / 8)
        # (3, -1, 2), sum 4: patterns with sum >= 4 are (+,+,+) = 6 and (+,-,+) = 4: 2 / 8.
        self.assertEqual(stats.sign_flip_p([3, -1, 2]), 2 / 8)
        # One seed: p = 1/2 whatever its value; five seeds all positive: 1/32.
        self.assertEqual(stats.sign_flip_p([7.0]), 0.5)
        self.assertEqual(stats.sign_flip_p([1, 2, 3, 4, 5]), 1 / 32)
        # Against the claim, (-1, -1), sum -2: all 4 patterns (-2, 0, 0, 2) reach it.
        self.assertEqual(stats.sign_flip_p([-1, -1]), 1.0)
        self.assertEqual(stats.min_seeds_for(0.05), 5)
        self.assertEqual(stats.min_seeds_for(0.01), 7)

    def test_t_quantiles_match_closed_forms(self):
        # df = 1 (Cauchy): tan(pi (0.975 - 0.5)); df = 2: (2p - 1) / sqrt(2 p (1 - p)).
        self.assertAlmostEqual(stats.t_quantile(0.975, 1), math.tan(math.pi * 0.475), places=6)
        self.assertAlmostEqual(stats.t_quantile(0.975, 2),
                               0.95 / math.sqrt(2 * 0.975 * 0.025), places=6)
        self.assertAlmostEqual(stats.t_cdf(1.0, 1), 0.75, places=12)  # 1/2 + atan(1)/pi

    def test_t_interval(self):
        # (1, 2, 3): mean 2, sd 1, se 1/sqrt(3), df 2.
        m, lo, hi = stats.t_interval([1, 2, 3])
        half = 0.95 / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)
        self.assertAlmostEqual(m, 2.0)
        self.assertAlmostEqual(lo, 2 - half, places=6)
        self.assertAlmostEqual(hi, 2 + half, places=6)
        self.assertEqual(stats.t_interval([4.0]), (4.0, None, None))

    def test_holm(self):
        # Sorted 0.01, 0.03, 0.04 with m = 3: 0.03, max(0.03, 2 x 0.03) = 0.06, max(0.06, 0.04).
        self.assertEqual(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
        self.assertEqual(stats.holm([0.5]), [0.5])
        self.assertEqual(stats.holm([0.6, 0.7]), [1.0, 1.0])


class Claims(unittest.TestCase):
    def test_one_seed_at_p_033_is_not_supported(self):
        # Before: "supported" (every comparison goes the claimed way) whatever the p-value.
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("s1", "switch", 1, test_bleu=11.0)]
        r = check(runs, bleu_test=fixed_p({"t1": 0.33}))["thor.switch"]
        self.assertEqual(r.verdict, "direction agrees, not significant")
        self.assertIn("p = 0.330", r.significance)
        self.assertIn("no interval with 1 seed", r.measured)
        self.assertIn("alpha 0.05", r.significance)

    def test_significant_bleu_difference_is_supported_with_its_interval(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("t2", "thor", 2, test_bleu=14.0),
                fake_run("s1", "switch", 1, test_bleu=11.0),
                fake_run("s2", "switch", 2, test_bleu=10.0)]
        r = check(runs, bleu_test=fixed_p({"t1": 0.001}))["thor.switch"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        # Paired differences +1 and +4: mean 2.5, sd sqrt(4.5), se 1.5; t(0.975, 1 df) =
        # tan(0.475 pi) = 12.7062: 2.5 -/+ 19.06.
        half = math.tan(math.pi * 0.475) * 1.5
        self.assertIn("+2.50 BLEU", r.measured)
        self.assertIn(f"95% CI [{2.5 - half:+.2f}, {2.5 + half:+.2f}] over 2 seeds", r.measured)
        self.assertEqual(r.seeds, 2)
        self.assertEqual(r.p, 0.001)
        self.assertEqual(r.p_holm, 0.001)  # the only claim tested

    def test_a_claim_that_goes_the_other_way_is_opposite(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=9.0), fake_run("s1", "switch", 1,
                                                                   test_bleu=11.0)]
        r = check(runs, bleu_test=fixed_p({"t1": 0.001}))["thor.switch"]
        self.assertEqual(r.verdict, claims.OPPOSITE)
        self.assertIn("-2.00 BLEU", r.measured)
        self.assertIn("0 of 1 comparisons", r.measured)

    def test_a_missing_arm_is_not_measured_and_named(self):
        r = check([fake_run("s1", "switch", 1, test_bleu=11.0)])
        self.assertEqual(r["thor.switch"].verdict, claims.NOT_MEASURED)
        self.assertIn("thor and switch runs", r["thor.switch"].missing)
        self.assertEqual(r["thor.dense"].verdict, claims.NOT_MEASURED)
        self.assertIn("dense runs with sizing=active", r["thor.dense"].missing)

    def test_dense_baselines_by_sizing(self):
        runs = [fake_run("m1", "smoe_dropout", 1, test_bleu=12.0),
                fake_run("d1", "dense", 1, knobs={"sizing": "total"}, test_bleu=10.0),
                fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("a1", "dense", 1, knobs={"sizing": "active"}, test_bleu=13.0)]
        r = check(runs, bleu_test=fixed_p({"m1": 0.001, "t1": 0.001}))
        self.assertEqual(r["smoe.dense"].verdict, claims.SUPPORTED)
        self.assertIn("sizing=total", r["smoe.dense"].measured)
        self.assertEqual(r["thor.dense"].verdict, claims.OPPOSITE)

    def test_runs_without_common_seeds_are_not_paired(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("s2", "switch", 2, test_bleu=11.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.NOT_MEASURED)
        self.assertIn("share no seed", r.missing)

    def test_runs_with_other_settings_are_not_compared(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0, workers=1, workers_per_node=1),
                fake_run("s1", "switch", 1, test_bleu=11.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.NOT_MEASURED)
        self.assertIn("thor and switch runs", r.missing)
        self.assertIn("differ in workers 1 vs 4, workers_per_node 1 vs 2", r.missing)

    def test_no_outputs_means_no_test(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0), fake_run("s1", "switch", 1,
                                                                    test_bleu=11.0)]
        r = check(runs)["thor.switch"]
        self.assertEqual(r.verdict, claims.NOT_SIGNIFICANT)
        self.assertIn("no test: no per-sentence outputs stored", r.significance)
        self.assertIsNone(r.p)

    def test_holm_across_the_claims_tested(self):
        def runs():
            return [fake_run("t1", "thor", 1, test_bleu=12.0),
                    fake_run("s1", "switch", 1, test_bleu=11.0),
                    fake_run("g1", "gating_dropout", 1, knobs={"p": "0.3"}, test_bleu=12.0)]
        # Two claims with a test (thor.switch, gd.bleu; the others have no pair or no test).
        # p = 0.02 and 0.04: Holm 2 x 0.02 = 0.04, max(0.04, 0.04) = 0.04 <= 0.05: both hold.
        r = check(runs(), bleu_test=fixed_p({"t1": 0.02, "g1": 0.04}))
        self.assertAlmostEqual(r["thor.switch"].p_holm, 0.04)
        self.assertAlmostEqual(r["gd.bleu"].p_holm, 0.04)
        self.assertEqual(r["thor.switch"].verdict, claims.SUPPORTED)
        self.assertEqual(r["gd.bleu"].verdict, claims.SUPPORTED)
        self.assertIn("over the 2 claims tested", r["gd.bleu"].significance)
        # p = 0.03 and 0.04: 2 x 0.03 = 0.06 > 0.05: neither holds, though each alone would.
        r = check(runs(), bleu_test=fixed_p({"t1": 0.03, "g1": 0.04}))
        self.assertAlmostEqual(r["thor.switch"].p_holm, 0.06)
        self.assertAlmostEqual(r["gd.bleu"].p_holm, 0.06)
        self.assertEqual(r["thor.switch"].verdict, claims.NOT_SIGNIFICANT)
        self.assertEqual(r["gd.bleu"].verdict, claims.NOT_SIGNIFICANT)

    def test_alpha_is_an_option(self):
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0), fake_run("s1", "switch", 1,
                                                                    test_bleu=11.0)]
        self.assertEqual(check(runs, bleu_test=fixed_p({"t1": 0.03}))["thor.switch"].verdict,
                         claims.SUPPORTED)
        strict = check(runs, bleu_test=fixed_p({"t1": 0.03}), alpha=0.01)["thor.switch"]
        self.assertEqual(strict.verdict, claims.NOT_SIGNIFICANT)
        self.assertIn("alpha 0.01", strict.significance)

    def test_step_time_three_seeds_cannot_be_significant(self):
        r = check(step_runs([80, 90, 100], [100, 100, 110]))["ec.step_time"]
        self.assertEqual(r.verdict, claims.NOT_SIGNIFICANT)
        self.assertEqual(r.p, 1 / 8)  # every seed faster: 1 of 8 sign patterns
        self.assertIn("p = 0.125", r.significance)
        self.assertIn("needs at least 5 seeds", r.significance)
        self.assertIn("measured on this machine", r.measured)

    def test_step_time_five_seeds_faster_is_supported(self):
        r = check(step_runs([80] * 5, [100] * 5))["ec.step_time"]
        self.assertEqual(r.p, 1 / 32)
        self.assertEqual(r.verdict, claims.SUPPORTED)
        # Geometric-mean ratio 0.8, every seed the same: a zero-width interval.
        self.assertIn("ratio 0.800 (95% CI [0.800, 0.800] over 5 seeds)", r.measured)

    def test_step_time_mixed_seeds(self):
        # log ratios log 2, log 2, log(100/110): sum > 0; the patterns reaching it are
        # (+,+,-) itself and (+,+,+): p = 2/8. Ratio (0.5 x 0.5 x 1.1)^(1/3) = 0.650.
        r = check(step_runs([50, 50, 110], [100, 100, 100]))["ec.step_time"]
        self.assertEqual(r.p, 2 / 8)
        self.assertIn(f"ratio {(0.5 * 0.5 * 1.1) ** (1 / 3):.3f}", r.measured)
        self.assertEqual(r.verdict, claims.NOT_SIGNIFICANT)
        slower = check(step_runs([120, 120, 90], [100, 100, 100]))["ec.step_time"]
        self.assertEqual(slower.verdict, claims.OPPOSITE)

    def test_step_time_modeled_on_the_cluster_profile_when_logged(self):
        runs = step_runs([80] * 5, [100] * 5)
        for i, r in enumerate(runs):
            modeled = 8.0 if r.method == "expert_choice" else 10.0
            r.metrics["compute_modeled_ms"] = [(10, 1.0, modeled - 1.0)]
            r.metrics["comm.modeled_ms"] = [(10, 1.0, 1.0)]
            r.metrics["step_modeled_ms"] = [(10, 1.0, modeled)]
            r.spec["device_profile"] = "h100"
        r = check(runs)["ec.step_time"]
        self.assertIn("ms per step (modeled on h100)", r.measured)
        self.assertIn("8.00 vs 10.00", r.measured)

    def test_gating_dropout_bytes_ratio_against_one_minus_p(self):
        def runs(gd_bytes):
            return [fake_run("g", "gating_dropout", 1, knobs={"p": "0.3"},
                             metrics={"comm.other_node_bytes": [(10, 1.0, gd_bytes)]}),
                    fake_run("s", "switch", 1,
                             metrics={"comm.other_node_bytes": [(10, 1.0, 1e6)]})]
        ok = check(runs(0.7e6))["gd.bytes"]
        # Within the tolerance, but one seed: each one-sided test has p = 1/2.
        self.assertEqual(ok.verdict, claims.NOT_SIGNIFICANT)
        self.assertEqual(ok.p, 0.5)
        self.assertIn("ratio 0.700", ok.measured)
        bad = check(runs(0.9e6))["gd.bytes"]
        self.assertEqual(bad.verdict, claims.OPPOSITE)

    def test_gating_dropout_default_p(self):
        # p = -1 stands for the method's default: 0.3 (0.2 with gate_expert_drop).
        runs = [fake_run("g", "gating_dropout", 1, knobs={"p": "-1"},
                         metrics={"comm.other_node_bytes": [(10, 1.0, 0.7e6)]}),
                fake_run("s", "switch", 1, metrics={"comm.other_node_bytes": [(10, 1.0, 1e6)]})]
        r = check(runs)["gd.bytes"]
        self.assertEqual(r.verdict, claims.NOT_SIGNIFICANT)
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
        def bleu_test(pairs):
            # Pairs are ((run, higher k), (run, lower k)).
            (_, k_hi), (_, k_lo) = pairs[0]
            return BleuTest(0.001, 1.0, 0.0, 10, f"stub {k_hi} vs {k_lo}")
        up = check([fake_run("m", "smoe_dropout", 1, k_curve={1: 5.0, 2: 6.0, 4: 7.0})],
                   bleu_test=bleu_test)["smoe.monotone_k"]
        # Two comparisons (k=2 vs 1, k=4 vs 2), each p = 0.001: the claim's p is the larger.
        self.assertEqual(up.verdict, claims.SUPPORTED)
        self.assertIn("k=4 vs k=2: +1.00 BLEU", up.measured)
        self.assertIn("stub 4 vs 2", up.significance)
        bumpy = check([fake_run("m", "smoe_dropout", 1, k_curve={1: 5.0, 2: 7.0, 4: 6.0})],
                      bleu_test=bleu_test)["smoe.monotone_k"]
        self.assertEqual(bumpy.verdict, claims.OPPOSITE)
        none = check([fake_run("m", "smoe_dropout", 1, test_bleu=3.0)])
        self.assertEqual(none["smoe.monotone_k"].verdict, claims.NOT_MEASURED)

    def test_time_to_target_when_only_one_side_reaches_it(self):
        runs = [fake_run("s", "switch", 1, knobs={"capacity_factor": "1.25"},
                         valid=[(10, 5.0, 1.0), (20, 10.0, 4.0)]),
                fake_run("g", "gshard", 1, knobs={"capacity_factor": "1.25"},
                         valid=[(10, 6.0, 1.0), (20, 12.0, 2.0)])]
        r = check(runs, target=3.0)["switch.time"]
        # Goes the claimed way, but one seed: p = 1/2.
        self.assertEqual(r.verdict, claims.NOT_SIGNIFICANT)
        self.assertEqual(r.p, 0.5)
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
        r = check(runs, bleu_test=fixed_p({"r1": 0.01, "r2": 0.02}))["switch.experts"]
        self.assertEqual(r.verdict, claims.SUPPORTED)
        self.assertEqual(r.p, 0.02)  # the larger of the two steps' p-values
        self.assertIn("(4) vs", r.measured)
        self.assertIn("+1.00 BLEU", r.measured)
        self.assertIn("+2.00 BLEU", r.measured)

    def test_conjunction_needs_both_sides(self):
        runs = [fake_run("e1", "expert_choice", 1, knobs={"capacity_factor": "2.0"},
                         test_bleu=12.0),
                fake_run("s1", "switch", 1, test_bleu=11.0)]
        r = check(runs, bleu_test=fixed_p({"e1": 0.001}))["ec.quality"]
        self.assertEqual(r.verdict, claims.NOT_MEASURED)
        runs.append(fake_run("g1", "gshard", 1, test_bleu=11.5))
        r = check(runs, bleu_test=fixed_p({"e1": 0.001}))["ec.quality"]
        self.assertEqual(r.verdict, claims.SUPPORTED)

    def test_headline_is_the_mean_of_the_languages(self):
        run = fake_run("r", "switch", 1, test_bleu=17.0)  # "all" row: pooled corpus BLEU
        for lang, b in (("de", 10.0), ("fr", 20.0)):
            run.evals.append({"step": 100, "wall_s": 1.0, "split": "test", "lang": lang,
                              "k": 0, "bleu": b, "chrf": None, "signature": "sig",
                              "decoding": "{}", "n_sentences": 5})
        s = summarize(run, DEFAULT_NETWORK)
        self.assertEqual(s.bleu(), 15.0)
        self.assertEqual(s.test_bleu, {"all": 17.0, "de": 10.0, "fr": 20.0})
        configs = group_configs([s])
        table = configs_table(configs, None)
        row = dict(zip(table.columns, table.rows[0]))
        self.assertEqual(row["test BLEU (headline)"], "15.00")
        self.assertEqual(row["test de"], "10.00")
        self.assertEqual(row["test fr"], "20.00")

    def test_checks_are_bound_to_claims_by_id_not_position(self):
        # Four claims with different verdicts: thor.switch supported, thor.dense opposite,
        # smoe.dense direction agrees without a test, gd.bleu not measured (no base router run).
        runs = [fake_run("t1", "thor", 1, test_bleu=12.0),
                fake_run("s1", "switch", 1, test_bleu=11.0),
                fake_run("a1", "dense", 1, knobs={"sizing": "active"}, test_bleu=13.0),
                fake_run("m1", "smoe_dropout", 1, test_bleu=12.0),
                fake_run("d1", "dense", 1, knobs={"sizing": "total"}, test_bleu=10.0)]
        bleu_test = fixed_p({"t1": 0.001})
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        forward = claims.check(configs, None, bleu_test)
        backward = claims.check(configs, None, bleu_test, claim_list=claims.CLAIMS[::-1])
        # Each result is its own claim's, in the order of the list given.
        self.assertEqual([r.claim.id for r in backward], [c.id for c in claims.CLAIMS][::-1])
        verdicts = {r.claim.id: (r.verdict, r.measured, r.missing, r.p, r.p_holm)
                    for r in forward}
        self.assertEqual({r.claim.id: (r.verdict, r.measured, r.missing, r.p, r.p_holm)
                          for r in backward}, verdicts)
        self.assertEqual(verdicts["thor.switch"][0], claims.SUPPORTED)
        self.assertEqual(verdicts["thor.dense"][0], claims.OPPOSITE)
        self.assertEqual(verdicts["smoe.dense"][0], claims.NOT_SIGNIFICANT)
        self.assertEqual(verdicts["gd.bleu"][0], claims.NOT_MEASURED)
        # A subset gets the same verdicts; a claim without a check is an error naming it.
        subset = [c for c in claims.CLAIMS if c.id in ("thor.dense", "thor.switch")]
        self.assertEqual([(r.claim.id, r.verdict) for r in
                          claims.check(configs, None, bleu_test, claim_list=subset[::-1])],
                         [("thor.dense", claims.OPPOSITE), ("thor.switch", claims.SUPPORTED)])
        stray = claims.Claim("no.such", "paper", "statement", "measure")
        with self.assertRaisesRegex(ValueError, "no check for claim\\(s\\) no.such"):
            claims.check(configs, None, bleu_test, claim_list=[stray])

    def test_every_claim_has_a_row(self):
        results = check([fake_run("s", "switch", 1, test_bleu=1.0)])
        self.assertEqual(sorted(results), sorted(c.id for c in claims.CLAIMS))
        for r in results.values():
            self.assertEqual(r.verdict, claims.NOT_MEASURED, r.claim.id)
            self.assertTrue(r.missing, r.claim.id)


class SeedAggregation(unittest.TestCase):
    """Tables and figures aggregate seeds as `moebench runs --group-by config` does: the mean
    and the 95% Student-t interval of the mean (hand-computed values)."""

    def test_stat_interval_by_hand(self):
        # 20, 22, 24: mean 22, s = 2, t_{0.975,2} = 4.302653: 4.302653 * 2 / sqrt(3) = 4.968276.
        st = Stat.of([20.0, 22.0, 24.0])
        self.assertEqual(st.mean, 22.0)
        self.assertAlmostEqual(st.ci95, 4.968276, places=5)
        self.assertAlmostEqual(st.band_lo, 22.0 - 4.968276, places=5)
        self.assertAlmostEqual(st.band_hi, 22.0 + 4.968276, places=5)
        one = Stat.of([5.0])
        self.assertIsNone(one.ci95)
        self.assertEqual((one.band_lo, one.band_hi), (5.0, 5.0))

    def test_curve_band_is_the_t_interval(self):
        # Step 10: 10 and 14 -> mean 12, s = sqrt(8), t_{0.975,1} = 12.706205:
        # 12.706205 * sqrt(8) / sqrt(2) = 25.41241. Step 20: one seed, no band.
        agg = aggregate_curve([[(10, 1.0, 10.0), (20, 2.0, 5.0)], [(10, 3.0, 14.0)]])
        self.assertEqual(agg[0][0], 10)
        self.assertEqual(agg[0][1], 2.0)
        self.assertEqual(agg[0][2], 12.0)
        self.assertAlmostEqual(agg[0][3], 12.0 - 25.41241, places=4)
        self.assertAlmostEqual(agg[0][4], 12.0 + 25.41241, places=4)
        self.assertEqual(agg[1][2:], (5.0, 5.0, 5.0, 1))

    def test_configurations_table_shows_mean_and_half_width_with_seeds(self):
        runs = [fake_run(f"s{seed}", "switch", seed, test_bleu=b)
                for seed, b in ((1, 20.0), (2, 22.0), (3, 24.0))]
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        table = configs_table(configs, None)
        row = dict(zip(table.columns, table.rows[0]))
        self.assertEqual(row["test BLEU (headline)"], "22.00 ± 4.97")
        self.assertEqual(row["seeds"], "1,2,3")
        self.assertIn("Student-t", table.note)

    def test_configurations_table_shows_missing_seeds(self):
        # Seeds 1-3 in the selection: cf 1.0 finished all three; cf 2.0 finished seed 1, its
        # seed 2 failed and it has no seed-3 run: "2 (failed),3", as runs --group-by shows.
        runs = [fake_run(f"a{seed}", "switch", seed, knobs={"capacity_factor": "1.0"},
                         test_bleu=20.0) for seed in (1, 2, 3)]
        runs.append(fake_run("b1", "switch", 1, knobs={"capacity_factor": "2.0"},
                             test_bleu=10.0))
        failed = fake_run("b2", "switch", 2, knobs={"capacity_factor": "2.0"})
        failed.status = "failed"
        finished = [summarize(r, DEFAULT_NETWORK) for r in runs]
        configs = group_configs(finished, selection=runs + [failed])
        self.assertEqual([c.missing for c in configs], [[], ["2 (failed)", "3"]])
        table = configs_table(configs, None)
        rows = [dict(zip(table.columns, r)) for r in table.rows]
        self.assertEqual([(r["seeds"], r["missing seeds"]) for r in rows],
                         [("1,2,3", "-"), ("1", "2 (failed),3")])
        self.assertIn("missing seeds", table.note)
        # Without a selection, the seeds of the finished runs: cf 2.0 misses 2 and 3.
        self.assertEqual([c.missing for c in group_configs(finished)], [[], ["2", "3"]])

    def test_column_sets_every_figures_paper_width_with_one_font_scale(self):
        import re
        import tempfile
        from reports import figures
        from reports.cli import FigureContext, parse_args
        runs = [fake_run(f"s{cf}{seed}", "switch", seed, knobs={"capacity_factor": cf},
                         test_bleu=10.0 + seed, valid=[(10, 1.0, 1.0), (20, 2.0, 2.0 + seed)],
                         metrics={"train_loss": [(10, 1.0, 6.0), (20, 2.0, 5.0 - seed)]})
                for cf in ("1.0", "2.0") for seed in (1, 2)]
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        # 3.4 in and 7 in are 244.8 pt and 504 pt (72 pt per inch), in the SVG and the PDF.
        heights = {}
        for column, points in (("one", "244.8"), ("two", "504")):
            with tempfile.TemporaryDirectory() as out:
                ctx = FigureContext(out, "png", None, column)
                for name in figures.FIGURE_NAMES:
                    figures.draw_all(configs, Styler(configs), ctx, only=name)
                    with open(os.path.join(out, f"{name}.svg"), encoding="utf-8") as f:
                        svg = f.read()
                    size = re.search(r'<svg[^>]* width="([0-9.]+)pt" height="([0-9.]+)pt"', svg)
                    self.assertEqual(size.group(1), points, (column, name))
                    heights[column, name] = float(size.group(2))
                    with open(os.path.join(out, f"{name}.pdf"), "rb") as f:
                        self.assertRegex(f.read(), f"/MediaBox \\[ *0 0 {points} ".encode(),
                                         (column, name))
                    if name in ("bleu_vs_steps", "train_loss", "knob_sweep", "comm_bytes"):
                        sizes = {float(x) for x in re.findall(r"font: ([0-9.]+)px", svg)}
                        self.assertTrue(sizes, name)
                        self.assertLessEqual(sizes, {figures.FONT_PT, figures.SMALL_PT},
                                             (column, name))
        # Two panels (2.9 in high each) side by side at 7 in, stacked at 3.4 in.
        self.assertAlmostEqual(heights["two", "train_loss"], 2.9 * 72)
        self.assertAlmostEqual(heights["one", "train_loss"], 2 * 2.9 * 72)
        self.assertEqual(parse_args([]).column, "two")
        self.assertEqual(parse_args(["--column", "one"]).column, "one")
        with self.assertRaises(SystemExit):
            parse_args(["--column", "three"])
        self.assertFalse(parse_args([]).no_figures)
        self.assertTrue(parse_args(["--no-figures"]).no_figures)
        with self.assertRaises(SystemExit):  # one figure and none
            parse_args(["--no-figures", "--figure", "train_loss"])

    def test_knob_sweep_and_vector_copies(self):
        import tempfile
        from reports import figures
        from reports.cli import FigureContext
        runs = [fake_run(f"s{cf}{seed}", "switch", seed, knobs={"capacity_factor": cf},
                         test_bleu=b + seed)
                for cf, b in (("1.0", 10.0), ("2.0", 12.0)) for seed in (1, 2)]
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in runs])
        with tempfile.TemporaryDirectory() as out:
            drawn = figures.draw_all(configs, Styler(configs), FigureContext(out, "png", None),
                                     only="knob_sweep")
            self.assertEqual([f.name for f in drawn], ["knob_sweep"])
            self.assertEqual(sorted(os.listdir(out)),
                             ["knob_sweep.pdf", "knob_sweep.png", "knob_sweep.svg"])
            with open(os.path.join(out, "knob_sweep.pdf"), "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-")
            with open(os.path.join(out, "knob_sweep.svg"), encoding="utf-8") as f:
                svg = f.read()
            # Text stays text (svg.fonttype none): the axis names are searchable.
            self.assertIn("knobs.capacity_factor", svg)
            self.assertNotIn("not measured by this sweep", svg)


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

    def test_a_field_left_at_its_default_is_not_in_the_label(self):
        # shared_experts is stored only when set (a field added after the first release): the
        # plain arm is "switch", not "switch shared_experts=None"; an empty eval_k likewise.
        plain = fake_run("a", "switch", 1)
        shared = fake_run("b", "switch", 1)
        shared.spec["shared_experts"] = 1
        shared.spec["eval_k"] = [1, 4]
        plain.spec["eval_k"] = []
        configs = group_configs([summarize(r, DEFAULT_NETWORK) for r in (plain, shared)])
        self.assertEqual(sorted(c.label for c in configs),
                         ["switch", "switch eval_k=1,4 shared_experts=1"])


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
