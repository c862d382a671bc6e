// config_docs_test.cc: docs/CONFIG.md documents every key of the config schema.
#include <gtest/gtest.h>

#include "common/config_loader.h"
#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

TEST(ConfigDocs, EveryKeyOfTheSchemaIsDocumented) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::string docs, ReadFile(std::string(RLJ_SOURCE_DIR) + "/docs/CONFIG.md"));
  std::vector<std::string> missing;
  for (const std::string& key : SchemaKeyPaths(v1::RunConfig())) {
    if (docs.find("`" + key + "`") == std::string::npos) missing.push_back(key);
  }
  EXPECT_TRUE(missing.empty()) << "keys without a row in docs/CONFIG.md: " << ::testing::PrintToString(missing);
}

}  // namespace
}  // namespace rlj
