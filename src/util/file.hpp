// Reading a whole file through a descriptor pw owns (close-on-exec, unlike std::ifstream's).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace pw {

// The contents of `path`, or nothing with `err` set to the errno of the failed open or read.
std::optional<std::string> read_text_file(const std::filesystem::path& path, int& err);

}  // namespace pw
