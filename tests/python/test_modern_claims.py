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


class LayoutTest(unittest.TestCase):
    def test_defaults_when_the_spec_leaves_them_out(self):
        plain = types.SimpleNamespace(spec={"method": "switch"})
        fine = types.SimpleNamespace(spec={"method": "switch", "shared_experts": 1,
                                           "expert_granularity": 2})
        self.assertEqual(claims._layout(plain), (0, 1))
        self.assertEqual(claims._layout(fine), (1, 2))


if __name__ == "__main__":
    unittest.main()
