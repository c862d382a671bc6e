// device_name_test.cc: ParseDeviceName: the accepted forms and the errors of everything else.
#include "common/device_name.h"

#include <gtest/gtest.h>

namespace rlj {
namespace {

TEST(DeviceName, ParsesAutoCpuCudaAndCudaN) {
  for (const char* text : {"", "auto"}) {
    ASSERT_TRUE(ParseDeviceName(text).ok()) << text;
    EXPECT_EQ(ParseDeviceName(text)->kind, DeviceName::Kind::kAuto) << text;
  }
  EXPECT_EQ(ParseDeviceName("cpu")->kind, DeviceName::Kind::kCpu);
  EXPECT_EQ(ParseDeviceName("cuda")->kind, DeviceName::Kind::kCuda);
  EXPECT_EQ(ParseDeviceName("cuda")->index, 0);
  EXPECT_EQ(ParseDeviceName("cuda:0")->index, 0);
  EXPECT_EQ(ParseDeviceName("cuda:3")->index, 3);
  EXPECT_EQ(ParseDeviceName("cuda:4095")->index, 4095);
}

TEST(DeviceName, RefusesOtherFormsNamingTheTextAndTheAcceptedOnes) {
  for (const char* text : {"gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:1.5", "cuda:4096", "cuda:00001",
                           "cuda: 1", "cuda:1 ", "cpu:0", "mps", "cudax"}) {
    const auto parsed = ParseDeviceName(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(parsed.status().message().find(std::string("'") + text + "'"), std::string::npos)
        << parsed.status().message();
    EXPECT_NE(parsed.status().message().find("auto, cpu, cuda or cuda:N"), std::string::npos)
        << parsed.status().message();
  }
}

}  // namespace
}  // namespace rlj
