#include "harness/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <ATen/Context.h>
#include <torch/serialize.h>

#include "harness/error_text.h"

namespace moebench {
namespace {

// The generators a training step draws from: the CPU's (dropout on the CPU, weight init) and,
// on a GPU, the device's. Routing draws come from generators seeded per (seed, step, layer),
// which need no state (methods/routing_util.h).
at::Generator DefaultGenerator(const at::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

std::string ReadString(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString()) return "";
  return value.toStringRef();
}

// Writes `bytes` to `path` and syncs it; throws naming the system's reason.
void WriteFileOrThrow(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw std::runtime_error(std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error(std::strerror(errno));
}

}  // namespace

void SaveCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    const TrainPosition& pos, const CheckpointOwner& owner,
                    const at::Device& device, bool keep_previous) {
  const std::string tmp = path + ".tmp";
  try {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive model_archive, optim_archive;
    model->save(model_archive);
    optimizer.save(optim_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optim_archive);
    archive.write("step", at::tensor(pos.step, at::kLong));
    archive.write("train_seconds", at::tensor(pos.train_seconds, at::kDouble));
    archive.write("owner.run_id", c10::IValue(owner.run_id));
    archive.write("owner.spec_sha256", c10::IValue(owner.spec_sha256));
    archive.write("owner.db_id", c10::IValue(owner.db_id));
    archive.write("rng.cpu", DefaultGenerator(at::kCPU).get_state());
    if (!device.is_cpu()) archive.write("rng.device", DefaultGenerator(device).get_state());
    // Serialised in memory, then written here: LibTorch's file writer, failing mid-write (a full
    // disk), throws again from its destructor and terminates the process.
    std::ostringstream bytes;
    archive.save_to(bytes);
    WriteFileOrThrow(tmp, bytes.str());
    if (keep_previous && std::filesystem::exists(path)) {
      std::filesystem::rename(path, path + ".prev");
    }
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);  // a partial file is no checkpoint
    throw std::runtime_error("cannot write the checkpoint " + path + ": " + ErrorText(e));
  }
}

CheckpointInfo ReadCheckpointInfo(const std::string& path) {
  CheckpointInfo info;
  if (!std::filesystem::exists(path)) return info;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, at::Device(at::kCPU));
    at::Tensor step;
    archive.read("step", step);
    info.step = step.item<int64_t>();
    info.owner.run_id = ReadString(archive, "owner.run_id");
    info.owner.spec_sha256 = ReadString(archive, "owner.spec_sha256");
    info.owner.db_id = ReadString(archive, "owner.db_id");
    info.has_owner = !info.owner.run_id.empty();
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " cannot be read: " + ErrorText(e));
  }
  return info;
}

std::string CheckpointOwnerMismatch(const CheckpointInfo& info, const CheckpointOwner& expected) {
  if (!info.has_owner) {
    return "it records no owner (written by an earlier moebench), so it may be another run's";
  }
  if (info.owner.run_id != expected.run_id) {
    return "it was written for run " + info.owner.run_id + ", not " + expected.run_id;
  }
  if (info.owner.spec_sha256 != expected.spec_sha256) {
    return "it was written for another spec of run " + expected.run_id + " (spec SHA-256 " +
           info.owner.spec_sha256.substr(0, 16) + "..., this one " +
           expected.spec_sha256.substr(0, 16) + "...)";
  }
  if (info.owner.db_id != expected.db_id) {
    return "it belongs to run " + expected.run_id + " of another database (id " + info.owner.db_id +
           "; this database's id is " + expected.db_id + ")";
  }
  return "";
}

void LoadCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    TrainPosition* pos, const at::Device& device) {
  try {
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    archive.load_from(path, device);
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    model->load(model_archive);
    optimizer.load(optim_archive);
    at::Tensor step, seconds, rng;
    archive.read("step", step);
    archive.read("train_seconds", seconds);
    pos->step = step.item<int64_t>();
    pos->train_seconds = seconds.item<double>();
    // Generator states are CPU byte tensors whatever the device the archive was mapped to.
    if (archive.try_read("rng.cpu", rng)) DefaultGenerator(at::kCPU).set_state(rng.cpu());
    if (!device.is_cpu() && archive.try_read("rng.device", rng)) {
      DefaultGenerator(device).set_state(rng.cpu());
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " cannot be loaded: " + ErrorText(e));
  }
}

}  // namespace moebench
