#include "harness/util/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace moebench {
namespace {

constexpr double kTiny = 1e-300;
constexpr int kMaxTerms = 500;
constexpr int kBisectionSteps = 200;

// The continued fraction of the regularized incomplete beta function (Lentz's method).
double BetaContinuedFraction(double a, double b, double x) {
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0;
  double d = 1.0 - qab * x / qap;
  d = 1.0 / (std::fabs(d) > kTiny ? d : kTiny);
  double h = d;
  for (int m = 1; m < kMaxTerms; m++) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    d = 1.0 / (std::fabs(d) > kTiny ? d : kTiny);
    c = 1.0 + aa / (std::fabs(c) > kTiny ? c : kTiny);
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    d = 1.0 / (std::fabs(d) > kTiny ? d : kTiny);
    c = 1.0 + aa / (std::fabs(c) > kTiny ? c : kTiny);
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < 1e-15) break;
  }
  return h;
}

double RegularizedBeta(double a, double b, double x) {
  if (x <= 0) return 0.0;
  if (x >= 1) return 1.0;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * BetaContinuedFraction(a, b, x) / a;
  return 1.0 - front * BetaContinuedFraction(b, a, 1 - x) / b;
}

}  // namespace

double StudentTCdf(double t, double df) {
  if (!(df > 0)) throw std::invalid_argument("Student t: degrees of freedom must be > 0");
  // tail = P(T > |t|) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2). Near t = 0, x is close to 1
  // and 1 - x loses digits, so there the symmetric form I_x(a, b) = 1 - I_{1-x}(b, a) is used
  // with 1 - x = t^2 / (df + t^2) computed directly.
  const double a = df / 2.0, b = 0.5;
  const double x = df / (df + t * t);
  const double one_minus_x = t * t / (df + t * t);
  const double tail = x < (a + 1) / (a + b + 2) ? 0.5 * RegularizedBeta(a, b, x)
                                                : 0.5 * (1.0 - RegularizedBeta(b, a, one_minus_x));
  return t >= 0 ? 1.0 - tail : tail;
}

double StudentTQuantile(double p, double df) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument("Student t: p must be in (0, 1)");
  double lo = -1e6, hi = 1e6;
  for (int i = 0; i < kBisectionSteps; i++) {
    const double mid = (lo + hi) / 2;
    if (StudentTCdf(mid, df) < p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return (lo + hi) / 2;
}

Summary Summarize(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values) {
    if (!std::isnan(x)) v.push_back(x);
  }
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  const double mean = sum / s.n;
  s.mean = mean;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  if (s.n < 2) return s;
  double squares = 0;
  for (double x : v) squares += (x - mean) * (x - mean);
  s.std = std::sqrt(squares / (s.n - 1));
  s.ci95 = StudentTQuantile(0.975, s.n - 1) * *s.std / std::sqrt(static_cast<double>(s.n));
  return s;
}

}  // namespace moebench
