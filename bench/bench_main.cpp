// moebench_bench: Google Benchmark suite (bench/README.md). Extra flags, removed before Google
// Benchmark parses the rest: --smoke (one step of each family on small shapes), --long (adds
// the base-size training step), --threads=N (intra-op threads, default 2), --profile=DIR (one
// extra profiled step per side, as Chrome traces; see bench/profile_summary.py),
// --device=cpu|cuda and --precision=fp32|bf16 (router, layer and training-step families),
// --train-sizes=a,b, --train-tokens=N,...,gpu and --train-length=L (the training-step family's
// presets, budgets and sentence length; bench_util.h).
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "bench/bench_registry.h"
#include "harness/model/sizes.h"
#include "harness/train/device.h"

namespace {

// `flag=N` with lo <= N <= hi into *out; false, saying what was expected, otherwise.
bool IntFlag(const std::string& arg, const std::string& flag, int64_t lo, int64_t hi,
             const char* expected, int64_t* out) {
  const std::string value = arg.substr(flag.size() + 1);
  try {
    size_t used = 0;
    *out = std::stoll(value, &used);
    if (used == value.size() && *out >= lo && *out <= hi) return true;
  } catch (const std::exception&) {
  }
  std::cerr << "moebench_bench: " << flag << ": expected " << expected << ", got '" << value
            << "'\n";
  return false;
}

// Takes moebench's own flags out of argv; returns false on a malformed value.
bool ParseOwnFlags(int* argc, char** argv, moebench::bench::BenchConfig* config) {
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--smoke") {
      config->smoke = true;
    } else if (arg == "--long") {
      config->long_mode = true;
    } else if (arg.rfind("--profile=", 0) == 0) {
      config->profile_dir = arg.substr(std::strlen("--profile="));
      std::error_code error;  // the traces go nowhere if the folder is missing: make it
      std::filesystem::create_directories(config->profile_dir, error);
      if (config->profile_dir.empty() || error) {
        std::cerr << "moebench_bench: --profile: cannot create folder '" << config->profile_dir
                  << "'" << (error ? ": " + error.message() : "") << "\n";
        return false;
      }
    } else if (arg.rfind("--device=", 0) == 0 || arg.rfind("--precision=", 0) == 0) {
      const bool device = arg.rfind("--device=", 0) == 0;
      const std::string value = arg.substr(arg.find('=') + 1);
      try {
        if (device) {
          config->device = moebench::ResolveDevice(value, 0);
        } else {
          config->bf16 = moebench::UsesBf16(value);
        }
      } catch (const std::exception& e) {
        std::cerr << "moebench_bench: " << (device ? "--device" : "--precision") << ": " << e.what()
                  << "\n";
        return false;
      }
      moebench::MakeCurrentDevice(config->device);
    } else if (arg.rfind("--train-sizes=", 0) == 0 || arg.rfind("--train-tokens=", 0) == 0) {
      const bool sizes = arg.rfind("--train-sizes=", 0) == 0;
      const std::string flag = arg.substr(0, arg.find('='));
      std::stringstream list(arg.substr(arg.find('=') + 1));
      for (std::string item; std::getline(list, item, ',');) {
        try {
          if (sizes) {
            moebench::SizePreset(item);  // throws, naming the known sizes
            config->train_sizes.push_back(item);
          } else if (item == "gpu") {
            config->train_tokens.push_back(0);
          } else {
            size_t used = 0;
            const int64_t n = std::stoll(item, &used);
            if (used != item.size() || n < 1) throw std::invalid_argument("");
            config->train_tokens.push_back(n);
          }
        } catch (const std::exception& e) {
          std::cerr << "moebench_bench: " << flag << ": "
                    << (sizes ? std::string(e.what())
                              : "expected positive token counts or gpu, got '" + item + "'")
                    << "\n";
          return false;
        }
      }
    } else if (arg.rfind("--train-length=", 0) == 0) {
      if (!IntFlag(arg, "--train-length", 1, 1000, "a sentence length in 1..1000",
                   &config->train_length)) {
        return false;
      }
    } else if (arg.rfind("--threads=", 0) == 0) {
      int64_t threads = 0;
      if (!IntFlag(arg, "--threads", 1, std::numeric_limits<int>::max(), "a positive integer",
                   &threads)) {
        return false;
      }
      config->threads = static_cast<int>(threads);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  if (config->smoke) {
    config->warmup = 0;
    config->iterations = 1;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  moebench::bench::EnsureBenchEnvironment(argv);
  if (const int rc = moebench::bench::RunBenchPeerIfAsked(); rc >= 0) return rc;
  moebench::bench::BenchConfig config;
  if (!ParseOwnFlags(&argc, argv, &config)) return 2;
  at::set_num_threads(config.threads);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  moebench::bench::RecordBenchContext(config);
  moebench::bench::RegisterRouterBenchmarks(config);
  moebench::bench::RegisterDispatchBenchmarks(config);
  moebench::bench::RegisterLayerBenchmarks(config);
  moebench::bench::RegisterGemmBenchmarks(config);
  moebench::bench::RegisterTrainStepBenchmarks(config);
  moebench::bench::RegisterAllToAllBenchmarks(config);
  benchmark::RunSpecifiedBenchmarks();
  moebench::bench::ShutdownAllToAllPeer();
  benchmark::Shutdown();
  return 0;
}
