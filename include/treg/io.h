// Small file helpers shared by every stage: whole-file reads, atomic writes, hashing.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace treg {

std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
// Writes to "<path>.tmp.<pid>", fsyncs, then renames over `path`, so readers never see half a file.
void write_file_atomic(const std::string& path, std::string_view bytes);
// Creates the directory and its parents; no error if it exists.
void make_dirs(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);

// SHA-256 as 64 lowercase hex digits; used to fingerprint models, tokenizers and data.
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);

}  // namespace treg
