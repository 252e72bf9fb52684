"""The modern routers' claims helpers (reports/claims.py): MaxVio by hand (METHODS-MODERN.md
section 11) and the shared/fine-grained layout of a configuration."""

import types
import unittest

from reports import claims


def summary(expert_load):
    return types.SimpleNamespace(run=types.SimpleNamespace(expert_load=expert_load))


class MaxVioTest(unittest.TestCase):
    def test_by_hand(self):
        # Loads [9, 1, 1, 1]: mean 3, (9 - 3) / 3 = 2.0; [6, 2, 4, 0]: mean 3, (6 - 3) / 3 = 1.0.
        self.assertAlmostEqual(claims.max_vio(summary({0: {10: [9, 1, 1, 1]}})), 2.0)
        self.assertAlmostEqual(claims.max_vio(summary({0: {10: [6, 2, 4, 0]}})), 1.0)
        # The mean over layers and logged steps; a perfectly balanced step is 0.
        loads = {0: {10: [9, 1, 1, 1], 20: [3, 3, 3, 3]}, 1: {10: [6, 2, 4, 0]}}
        self.assertAlmostEqual(claims.max_vio(summary(loads)), 1.0)

    def test_no_loads_is_none(self):
        self.assertIsNone(claims.max_vio(summary({})))
        self.assertIsNone(claims.max_vio(summary({0: {10: [0, 0]}})))


def run_with(metrics, seed=1):
    run = types.SimpleNamespace(metrics=metrics, seed=seed, expert_load={})
    return types.SimpleNamespace(run=run)


def config(label, knobs, runs):
    from reports.summary import Config
    return Config(key=label, method="topk", label=label,
                  spec={"method": "topk", "size": "tiny", "workers": 4, "workers_per_node": 2,
                        "knobs": dict(knobs)}, runs=runs)


def reach(copies, most, seed):
    """Two MoE layers logged at two steps: copies per token per (layer, step), and the most
    nodes a token reached."""
    return run_with({
        "moe.0.other_node_copies_per_token": [(10, 1.0, copies[0]), (20, 2.0, copies[1])],
        "moe.1.other_node_copies_per_token": [(10, 1.0, copies[2]), (20, 2.0, copies[3])],
        "moe.0.nodes_per_token_max": [(10, 1.0, 1.0), (20, 2.0, most)],
        "moe.1.nodes_per_token_max": [(10, 1.0, 1.0), (20, 2.0, 1.0)],
    }, seed)


class NodeLimitTest(unittest.TestCase):
    def test_copies_and_reach_by_hand(self):
        r = reach([0.5, 0.6, 0.4, 0.5], 2.0, 1)
        self.assertAlmostEqual(claims.other_node_copies(r), 0.5)  # (0.5+0.6+0.4+0.5) / 4
        self.assertEqual(claims.nodes_reached_max(r), 2.0)
        self.assertIsNone(claims.other_node_copies(run_with({})))
        self.assertIsNone(claims.nodes_reached_max(run_with({})))

    def check(self, limited_most):
        limited = config("topk M=1", {"k": "2", "node_limit_topk": "1"},
                         [reach([0.5] * 4, limited_most, s) for s in (1, 2, 3, 4, 5)])
        free = config("topk", {"k": "2", "node_limit_topk": "0"},
                      [reach([0.8] * 4, 2.0, s) for s in (1, 2, 3, 4, 5)])
        other_k = config("topk k=1", {"k": "1", "node_limit_topk": "0"},
                         [reach([0.1] * 4, 1.0, s) for s in (1, 2, 3, 4, 5)])
        checker = claims.Checker([limited, free, other_k], None, None)
        claim = next(c for c in claims.CLAIMS if c.id == "nodelimit.reach")
        return checker.node_limit(claim)

    def test_fewer_copies_within_the_bound_is_supported_over_five_seeds(self):
        result = self.check(1.0)
        # One comparison (the k=1 configuration is not a match); 5 of 5 seeds the claimed way:
        # sign-flip p = 1/32 < 0.05.
        self.assertEqual(len(result.comparisons), 1)
        self.assertAlmostEqual(result.p, 1 / 32)
        self.assertIn("most nodes a token of topk M=1 reaches: 1 (M = 1)", result.measured)
        self.assertEqual(claims.adjust([result], 0.05)[0].verdict, claims.SUPPORTED)

    def test_a_token_above_the_bound_makes_it_opposite(self):
        result = self.check(2.0)
        self.assertEqual(result.verdict, claims.OPPOSITE)
        self.assertIn("[above the bound]", result.measured)

    def test_the_bound_holds_only_where_groups_lie_within_nodes(self):
        def spec(workers, per_node, groups):
            return types.SimpleNamespace(
                spec={"workers": workers, "workers_per_node": per_node},
                knob=lambda name, default=None: groups if name == "node_limit_groups"
                else default)
        self.assertTrue(claims.groups_within_nodes(spec(4, 2, "0")))   # G = the 2 nodes
        self.assertTrue(claims.groups_within_nodes(spec(8, 2, "8")))   # 2 groups per node
        self.assertFalse(claims.groups_within_nodes(spec(4, 2, "1")))  # 1 group spans both
        self.assertFalse(claims.groups_within_nodes(spec(6, 2, "2")))  # a group spans nodes
        self.assertFalse(claims.groups_within_nodes(spec(3, 2, "0")))  # partial last node

    def test_without_the_metrics_it_is_not_measured(self):
        limited = config("a", {"k": "2", "node_limit_topk": "1"}, [run_with({}, 1)])
        free = config("b", {"k": "2", "node_limit_topk": "0"}, [run_with({}, 1)])
        claim = next(c for c in claims.CLAIMS if c.id == "nodelimit.reach")
        result = claims.Checker([limited, free], None, None).node_limit(claim)
        self.assertEqual(result.verdict, claims.NOT_MEASURED)


class AuxFreePairTest(unittest.TestCase):
    def test_pairs_differ_only_in_the_balancing(self):
        """aux_free pairs with the topk arm that has every shared knob equal but aux_coef: not
        with a node-limited or a capacity-bounded topk arm."""
        from reports.summary import Config

        def cfg(method, knobs, loads):
            run = types.SimpleNamespace(metrics={}, seed=1, expert_load={0: {10: loads}})
            return Config(key=method + repr(knobs), method=method, label=method + repr(knobs),
                          spec={"method": method, "size": "tiny", "knobs": dict(knobs)},
                          runs=[types.SimpleNamespace(run=run)])
        shared = {"k": "2", "score_func": "sigmoid", "dropless": "true", "node_limit_topk": "0"}
        aux_free = cfg("aux_free", dict(shared, aux_coef="0.0"), [3, 3, 3, 3])
        topk = cfg("topk", dict(shared, aux_coef="0.01"), [9, 1, 1, 1])
        limited = cfg("topk", dict(shared, aux_coef="0.01", node_limit_topk="1"), [5, 1, 1, 1])
        capped = cfg("topk", dict(shared, aux_coef="0.01", dropless="false"), [5, 1, 1, 1])
        checker = claims.Checker([aux_free, topk, limited, capped], None, None)
        result = checker.modern_checks()["auxfree.balance"](
            next(c for c in claims.CLAIMS if c.id == "auxfree.balance"))
        self.assertEqual([c.label for c in result.comparisons],
                         [f"{aux_free.label} vs {topk.label}"])
        # MaxVio 0 against (9 - 3) / 3 = 2: the balanced side is better by 2.
        self.assertAlmostEqual(result.comparisons[0].effect, -2.0)


class LayoutTest(unittest.TestCase):
    def test_defaults_when_the_spec_leaves_them_out(self):
        plain = types.SimpleNamespace(spec={"method": "switch"})
        fine = types.SimpleNamespace(spec={"method": "switch", "shared_experts": 1,
                                           "expert_granularity": 2})
        self.assertEqual(claims._layout(plain), (0, 1))
        self.assertEqual(claims._layout(fine), (1, 2))


if __name__ == "__main__":
    unittest.main()
