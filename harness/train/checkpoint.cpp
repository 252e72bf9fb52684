#include "harness/train/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <torch/serialize.h>

namespace moebench {

void SaveCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    const TrainPosition& pos) {
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
  std::filesystem::rename(tmp, path);
}

bool LoadCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    TrainPosition* pos) {
  if (!std::filesystem::exists(path)) return false;
  try {
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    archive.load_from(path);
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
