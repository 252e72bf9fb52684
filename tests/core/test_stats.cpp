// Summary statistics over seeds (harness/util/stats.h): Student-t quantiles against printed
// tables and intervals of small samples computed by hand.
#include <cmath>

#include <gtest/gtest.h>

#include "harness/util/stats.h"

namespace moebench {
namespace {

TEST(StudentT, QuantilesMatchPrintedTables) {
  // t_{0.975, df} from a standard table of Student's t (four decimals).
  EXPECT_NEAR(StudentTQuantile(0.975, 1), 12.7062, 1e-4);
  EXPECT_NEAR(StudentTQuantile(0.975, 2), 4.3027, 1e-4);
  EXPECT_NEAR(StudentTQuantile(0.975, 3), 3.1824, 1e-4);
  EXPECT_NEAR(StudentTQuantile(0.975, 4), 2.7764, 1e-4);
  EXPECT_NEAR(StudentTQuantile(0.975, 10), 2.2281, 1e-4);
  EXPECT_NEAR(StudentTQuantile(0.975, 30), 2.0423, 1e-4);
  // df = 1 is the Cauchy distribution: the quantile is tan(pi (p - 1/2)).
  EXPECT_NEAR(StudentTQuantile(0.975, 1), std::tan(M_PI * 0.475), 1e-8);
  // Symmetry, and the median.
  EXPECT_NEAR(StudentTQuantile(0.025, 5), -StudentTQuantile(0.975, 5), 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.5, 7), 0.0, 1e-9);
}

TEST(StudentT, CdfOfOneDegreeIsCauchy) {
  // P(T <= t) = 1/2 + atan(t) / pi for df = 1.
  for (double t : {-3.0, -0.5, 0.0, 1.0, 10.0}) {
    EXPECT_NEAR(StudentTCdf(t, 1), 0.5 + std::atan(t) / M_PI, 1e-10) << t;
  }
}

TEST(Summarize, ThreeSeedsByHand) {
  // 20, 22, 24: mean 22; s^2 = (4 + 0 + 4) / 2 = 4, s = 2; half-width
  // t_{0.975,2} * 2 / sqrt(3) = 4.302653 * 1.154701 = 4.968275.
  const Summary s = Summarize({20, 22, 24});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(*s.mean, 22.0);
  EXPECT_DOUBLE_EQ(*s.std, 2.0);
  EXPECT_NEAR(*s.ci95, 4.968275, 1e-5);
  EXPECT_DOUBLE_EQ(*s.min, 20.0);
  EXPECT_DOUBLE_EQ(*s.max, 24.0);
}

TEST(Summarize, FourValuesByHand) {
  // 1, 2, 3, 4: mean 2.5; s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; half-width
  // t_{0.975,3} * sqrt(5/3) / 2 = 3.182446 * 1.290994 / 2 = 4.108520 / 2 = 2.054260.
  const Summary s = Summarize({1, 2, 3, 4});
  EXPECT_NEAR(*s.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_NEAR(*s.ci95, 2.054260, 1e-5);
}

TEST(Summarize, OneValueHasNoIntervalAndNaNIsNotCounted) {
  const Summary one = Summarize({7.5, std::nan("")});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(*one.mean, 7.5);
  EXPECT_FALSE(one.std.has_value());
  EXPECT_FALSE(one.ci95.has_value());
  const Summary none = Summarize({});
  EXPECT_EQ(none.n, 0);
  EXPECT_FALSE(none.mean.has_value());
}

}  // namespace
}  // namespace moebench
