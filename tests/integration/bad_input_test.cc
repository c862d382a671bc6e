// bad_input_test.cc: bad configs, bad datasets and a taken port end with a clear message and a non-zero
// exit from the real binary, never a crash or a stack trace.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::FailedCleanly;
using testing::RunRlj;

class BadInput : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.file(name);
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }
  std::string Config(const std::string& extra) {
    return Write("c.yaml", absl::StrCat("name: bad\nruns_root: ", dir_.path(), "/runs\n", extra));
  }
  testing::Finished Rlj(const std::vector<std::string>& args) { return RunRlj(args, dir_.file("out.txt"), std::chrono::seconds(300)); }
  testing::ScratchDir dir_;
};

TEST_F(BadInput, UnknownConfigKeyNamesKeyAndLine) {
  const std::string config = Config("learner:\n  lrr: 0.1\n");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config}), config + ":4:3: learner.lrr: unknown key (did you mean 'lr'?)"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), "learner.lrr: unknown key"));
  EXPECT_TRUE(FailedCleanly(Rlj({"judge", config}), "learner.lrr: unknown key"));
}

TEST_F(BadInput, WrongTypeInOverrideNamesKey) {
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config, "--set", "learner.steps=ten"}),
                            "--set learner.steps=ten: learner.steps: expected an integer (32-bit), got 'ten'"));
}

TEST_F(BadInput, MissingConfigFile) {
  EXPECT_TRUE(FailedCleanly(Rlj({"run", dir_.file("nope.yaml")}), "config file " + dir_.file("nope.yaml") + ": cannot open"));
}

TEST_F(BadInput, ContradictoryValuesNameKeys) {
  EXPECT_TRUE(FailedCleanly(Rlj({"run", Config("model:\n  d_model: 30\n  n_heads: 4\n")}),
                            "model.d_model: must be divisible by model.n_heads"));
}

TEST_F(BadInput, BadDatasetLineNamesFileAndLine) {
  const std::string train = Write("train.jsonl",
                                  "{\"id\":\"1\",\"prompt\":\"1+1=\",\"reference\":\"2\"}\n"
                                  "{\"id\":\"2\",\"prompt\":\"2+2=\",\"reference\":\"4\"}\n"
                                  "{\"id\":\"3\",\"prompt\":\"oops\n");
  const std::string config = Config(absl::StrCat("data:\n  train_path: ", train, "\n"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), train + ":3: invalid JSON"));
  EXPECT_TRUE(FailedCleanly(Rlj({"sft", config}), train + ":3: invalid JSON"));
}

TEST_F(BadInput, MissingDatasetIsNamed) {
  const std::string config = Config(absl::StrCat("data:\n  train_path: ", dir_.file("absent.jsonl"), "\n"));
  EXPECT_TRUE(FailedCleanly(Rlj({"run", config}), dir_.file("absent.jsonl")));
}

TEST_F(BadInput, TakenPortIsAClearError) {
  // Hold a port the way another program would.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  const std::string config = Config("");
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", config, "--listen", taken}), "cannot listen on " + taken));
  EXPECT_TRUE(FailedCleanly(Rlj({"judge", config, "--listen", taken}), "cannot listen on " + taken));
  ::close(fd);
}

TEST_F(BadInput, MalformedListenAddress) {
  EXPECT_TRUE(FailedCleanly(Rlj({"learner", Config(""), "--listen", "localhost"}), "expected HOST:PORT"));
}

}  // namespace
}  // namespace rlj
