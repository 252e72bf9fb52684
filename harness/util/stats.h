// Summary statistics over seeds, for `moebench runs --group-by`, `best` and the reports
// (reports/stats.py computes the same interval in Python). Torch-free.
//
// Note [Interval over seeds]
// The 95% interval of a configuration's mean is Student's t interval over its n seeds:
// mean +- t_{0.975, n-1} * s / sqrt(n), with s the sample standard deviation (n - 1 in the
// denominator). It treats the seeds as independent draws of the run's result; with one seed
// there is no interval. ci95 is the half-width (the "+-" part).
#pragma once

#include <optional>
#include <vector>

namespace moebench {

// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
double StudentTCdf(double t, double df);
// The p-quantile of Student's t, 0 < p < 1 (bisection on StudentTCdf).
double StudentTQuantile(double p, double df);

struct Summary {
  int n = 0;                   // values that were present (NaN values are not counted)
  std::optional<double> mean;  // none when n = 0
  std::optional<double> std;   // sample standard deviation; none when n < 2
  std::optional<double> ci95;  // half-width of the t interval; none when n < 2
  std::optional<double> min, max;
};

// See Note [Interval over seeds]. NaN values are left out.
Summary Summarize(const std::vector<double>& values);

}  // namespace moebench
