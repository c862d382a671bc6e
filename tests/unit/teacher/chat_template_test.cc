// chat_template_test.cc: how the teacher renders a conversation for each chat template.
#include <gtest/gtest.h>

#include "teacher/chat_template.h"
#include "test_util.h"

namespace rlj::teacher {
namespace {

const std::vector<ChatMessage> kChat = {{"system", "Grade it."}, {"user", "12+34=46?"}};

TEST(ChatTemplate, RawJoinsContents) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::string text, RenderChat(kChat, ""));
  EXPECT_EQ(text, "Grade it.\n12+34=46?");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string single, RenderChat({{"user", "12+34=46?"}}, ""));
  EXPECT_EQ(single, "12+34=46?");
}

TEST(ChatTemplate, Presets) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::string chatml, RenderChat(kChat, "chatml"));
  EXPECT_EQ(chatml,
            "<|im_start|>system\nGrade it.<|im_end|>\n<|im_start|>user\n12+34=46?<|im_end|>\n<|im_start|>assistant\n");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string llama3, RenderChat({{"developer", "Be brief."}, {"user", "hi"}}, "llama3"));
  EXPECT_EQ(llama3,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string plain, RenderChat(kChat, "plain"));
  EXPECT_EQ(plain, "System: Grade it.\nUser: 12+34=46?\nAssistant:");
}

TEST(ChatTemplate, CustomTemplateAndErrors) {
  RLJ_ASSERT_OK_AND_ASSIGN(std::string text, RenderChat({{"user", "7*6=42"}}, "Q: {prompt}\nA:"));
  EXPECT_EQ(text, "Q: 7*6=42\nA:");
  EXPECT_TRUE(rlj::testing::FailsWith(RenderChat(kChat, "vicuna"), absl::StatusCode::kInvalidArgument, "vicuna"));
  RLJ_EXPECT_OK(ValidateChatTemplate("chatml"));
}

}  // namespace
}  // namespace rlj::teacher
