// Steps 1-2 of the l10n recipe (see l10n.h): download and unpack into the cache.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "datasets/cache_dir.h"
#include "datasets/l10n.h"
#include "harness/util/fs.h"
#include "harness/util/hash.h"
#include "harness/util/shell.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

constexpr size_t kOutputTailChars = 2000;

std::string Tail(const std::string& text) {
  return text.size() <= kOutputTailChars ? text : text.substr(text.size() - kOutputTailChars);
}

void CheckPackageName(const std::string& name) {
  bool ok =
      !name.empty() && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
  for (char c : name) {
    ok = ok &&
         ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
  }
  if (!ok) throw std::runtime_error("l10n: '" + name + "' is not a Debian package name");
}

// A fresh directory under `parent`, named prefix-XXXXXX.
fs::path MakeTempDir(const fs::path& parent, const std::string& prefix) {
  std::string pattern = (parent / (prefix + "-XXXXXX")).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    throw std::runtime_error("l10n: cannot create a temporary directory in '" + parent.string() +
                             "'");
  }
  return fs::path(buffer.data());
}

// The cached .deb of `package` ("<package>_<version>_<arch>.deb"), or an empty path. With
// several versions the last by name wins, so the choice does not depend on directory order.
fs::path FindCachedDeb(const fs::path& debs_dir, const std::string& package) {
  fs::path found;
  for (const auto& entry : fs::directory_iterator(debs_dir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(package + "_", 0) == 0 && entry.path().extension() == ".deb" &&
        (found.empty() || name > found.filename().string())) {
      found = entry.path();
    }
  }
  return found;
}

void Download(const std::vector<std::string>& packages, const fs::path& debs_dir) {
  fs::path temp = MakeTempDir(debs_dir, "download");
  std::string command = "cd " + ShellQuote(temp.string()) + " && apt-get download -q";
  for (const std::string& package : packages) command += " " + package;
  CommandResult result = RunCommand(command);
  if (result.exit_code != 0) {
    RemoveTree(temp);
    throw std::runtime_error("l10n: `" + command + "` failed (exit " +
                             std::to_string(result.exit_code) + "); the l10n corpus needs " +
                             "Debian's apt and its archive. Output:\n" + Tail(result.output));
  }
  // Each .deb appears in the cache whole or not at all.
  for (const auto& entry : fs::directory_iterator(temp)) {
    if (entry.path().extension() != ".deb") continue;
    std::error_code error;
    fs::rename(entry.path(), debs_dir / entry.path().filename(), error);
  }
  RemoveTree(temp);
}

// "Package" and "Version" from the .deb's control file.
std::pair<std::string, std::string> ReadControl(const fs::path& deb) {
  std::string command = "dpkg-deb -f " + ShellQuote(deb.string()) + " Package Version";
  CommandResult result = RunCommand(command);
  if (result.exit_code != 0) {
    throw std::runtime_error("l10n: `" + command + "` failed: " + Tail(result.output));
  }
  std::string name, version;
  std::istringstream lines(result.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("Package: ", 0) == 0) name = line.substr(9);
    if (line.rfind("Version: ", 0) == 0) version = line.substr(9);
  }
  if (name.empty() || version.empty()) {
    throw std::runtime_error("l10n: no Package/Version in the control file of '" + deb.string() +
                             "'");
  }
  return {name, version};
}

void Unpack(const fs::path& deb, const std::string& package, const fs::path& locale_dir) {
  fs::path parent = locale_dir.parent_path();
  fs::path temp = MakeTempDir(parent, "unpack");
  std::string command = "dpkg-deb -x " + ShellQuote(deb.string()) + " " + ShellQuote(temp.string());
  CommandResult result = RunCommand(command);
  if (result.exit_code != 0) {
    RemoveTree(temp);
    throw std::runtime_error("l10n: `" + command + "` failed: " + Tail(result.output));
  }
  fs::path locale = temp / "usr" / "share" / "locale";
  if (!fs::is_directory(locale)) {
    RemoveTree(temp);
    throw std::runtime_error("l10n: package '" + package + "' (" + deb.string() +
                             ") ships no usr/share/locale; it has no translations to read");
  }
  std::error_code error;
  fs::rename(locale, locale_dir, error);  // atomic; fails harmlessly if another process won
  RemoveTree(temp);
  if (!fs::is_directory(locale_dir)) {
    throw std::runtime_error("l10n: cannot move the catalogs of '" + package + "' to '" +
                             locale_dir.string() + "': " + error.message());
  }
}

std::string FileSha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return Sha256Hex(bytes.str());
}

}  // namespace

std::vector<L10nPackage> FetchL10nPackages(const L10nOptions& opt) {
  if (opt.packages.empty()) throw std::runtime_error("l10n: the package list is empty");
  for (const std::string& package : opt.packages) CheckPackageName(package);
  fs::path root = fs::path(ResolveDataCacheDir(opt.cache_dir)) / "l10n";
  fs::path debs_dir = root / "debs";
  fs::path locale_root = root / "locale";
  std::error_code error;
  fs::create_directories(debs_dir, error);
  fs::create_directories(locale_root, error);
  if (!fs::is_directory(debs_dir) || !fs::is_directory(locale_root)) {
    throw std::runtime_error("l10n: cannot create the cache directories under '" + root.string() +
                             "'");
  }

  std::vector<std::string> missing;
  for (const std::string& package : opt.packages) {
    if (FindCachedDeb(debs_dir, package).empty()) missing.push_back(package);
  }
  if (!missing.empty()) {
    if (!opt.allow_download) {
      throw std::runtime_error("l10n: package '" + missing[0] + "' is not in the cache '" +
                               debs_dir.string() + "' and downloading is off");
    }
    Download(missing, debs_dir);
  }

  std::vector<L10nPackage> packages;
  for (const std::string& name : opt.packages) {
    fs::path deb = FindCachedDeb(debs_dir, name);
    if (deb.empty()) {
      throw std::runtime_error("l10n: apt-get download left no .deb for '" + name + "' in '" +
                               debs_dir.string() + "'");
    }
    auto [control_name, version] = ReadControl(deb);
    if (control_name != name) {
      throw std::runtime_error("l10n: '" + deb.string() + "' holds package '" + control_name +
                               "', not '" + name + "'");
    }
    std::string key = name + "_" + version;
    std::replace(key.begin(), key.end(), ':', '%');  // epochs; keep the name one path element
    fs::path locale_dir = locale_root / key;
    if (!fs::is_directory(locale_dir)) Unpack(deb, name, locale_dir);
    packages.push_back({name, version, locale_dir.string(), FileSha256(deb)});
  }
  return packages;
}

}  // namespace moebench
