#include "treg/build_info.h"

// TREG_VERSION and TREG_SOURCE_DIR: set for this file alone by CMakeLists.txt.
namespace treg {

const char* build_version() { return TREG_VERSION; }
std::string source_dir() { return TREG_SOURCE_DIR; }

}  // namespace treg
