#include "harness/train/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <torch/serialize.h>

namespace moebench {

void SaveCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    const TrainPosition& pos, bool keep_previous) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive, optim_archive;
  model->save(model_archive);
  optimizer.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("step", at::tensor(pos.step, at::kLong));
  archive.write("train_seconds", at::tensor(pos.train_seconds, at::kDouble));
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  if (keep_previous && std::filesystem::exists(path)) {
    std::filesystem::rename(path, path + ".prev");
  }
  std::filesystem::rename(tmp, path);
}

int64_t CheckpointStep(const std::string& path) {
  if (!std::filesystem::exists(path)) return -1;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, at::Device(at::kCPU));
    at::Tensor step;
    archive.read("step", step);
    return step.item<int64_t>();
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " cannot be read: " + e.what());
  }
}

bool LoadCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    TrainPosition* pos, const at::Device& device) {
  if (!std::filesystem::exists(path)) return false;
  try {
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    archive.load_from(path, device);
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    model->load(model_archive);
    optimizer.load(optim_archive);
    at::Tensor step, seconds;
    archive.read("step", step);
    archive.read("train_seconds", seconds);
    pos->step = step.item<int64_t>();
    pos->train_seconds = seconds.item<double>();
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " cannot be loaded: " + e.what());
  }
  return true;
}

}  // namespace moebench
