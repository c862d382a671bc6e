// test_util.h: small helpers for unit tests: status assertions (Abseil 20220623 has no matchers) and
// scratch directories.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RLJ_ASSERT_OK(expr)                                                 \
  do {                                                                      \
    const ::absl::Status rlj_test_status_ = ::rlj::testing::AsStatus(expr); \
    ASSERT_TRUE(rlj_test_status_.ok()) << rlj_test_status_;                 \
  } while (0)

#define RLJ_EXPECT_OK(expr) EXPECT_TRUE(::rlj::testing::AsStatus(expr).ok()) << ::rlj::testing::AsStatus(expr)

// `lhs` = value of a StatusOr, failing the test when it is not OK.
#define RLJ_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  RLJ_ASSERT_OK_AND_ASSIGN_IMPL_(RLJ_TEST_CONCAT_(rlj_test_statusor_, __LINE__), lhs, rexpr)
#define RLJ_TEST_CONCAT_INNER_(a, b) a##b
#define RLJ_TEST_CONCAT_(a, b) RLJ_TEST_CONCAT_INNER_(a, b)
#define RLJ_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  ASSERT_TRUE(statusor.ok()) << statusor.status();           \
  lhs = std::move(statusor).value()

namespace rlj::testing {

inline absl::Status AsStatus(const absl::Status& status) { return status; }
template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Expects a non-OK status with `code` whose message contains `needle`.
template <typename T>
::testing::AssertionResult FailsWith(const T& result, absl::StatusCode code, std::string_view needle) {
  const absl::Status status = AsStatus(result);
  if (status.ok()) return ::testing::AssertionFailure() << "expected an error containing '" << needle << "', got OK";
  if (status.code() != code) return ::testing::AssertionFailure() << "expected code " << code << ", got " << status;
  if (std::string(status.message()).find(needle) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << needle << "' in: " << status.message();
  }
  return ::testing::AssertionSuccess();
}

// A fresh empty directory under the test temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "scratch";
    path_ = std::filesystem::path(::testing::TempDir()) / ("rlj-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace rlj::testing
