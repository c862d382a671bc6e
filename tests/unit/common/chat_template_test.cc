// chat_template_test.cc: the one chat-template module: a conversation per preset (the teacher's chat
// completions), one prompt (the actor, eval, generate) rendered as the one-turn conversation, and errors.
#include "common/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace rlj {
namespace {

const std::vector<ChatMessage> kChat = {{"system", "Grade it."}, {"user", "12+34=46?"}};

std::string Chat(const std::vector<ChatMessage>& messages, std::string_view spec) {
  auto parsed = ChatTemplate::Parse(spec);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->RenderChat(messages) : "";
}

TEST(ChatTemplate, RawJoinsContents) {
  EXPECT_EQ(Chat(kChat, ""), "Grade it.\n12+34=46?");
  EXPECT_EQ(Chat({{"user", "12+34=46?"}}, ""), "12+34=46?");
}

TEST(ChatTemplate, Presets) {
  EXPECT_EQ(Chat(kChat, "chatml"),
            "<|im_start|>system\nGrade it.<|im_end|>\n<|im_start|>user\n12+34=46?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(
      Chat({{"developer", "Be brief."}, {"user", "hi"}}, "llama3"),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(Chat(kChat, "plain"), "System: Grade it.\nUser: 12+34=46?\nAssistant:");
}

TEST(ChatTemplate, CustomTemplateAndErrors) {
  EXPECT_EQ(Chat({{"user", "7*6=42"}}, "Q: {prompt}\nA:"), "Q: 7*6=42\nA:");
  EXPECT_TRUE(testing::FailsWith(ChatTemplate::Parse("vicuna"), absl::StatusCode::kInvalidArgument, "vicuna"));
  EXPECT_TRUE(testing::FailsWith(ChatTemplate::Parse("vicuna", "--chat-template"), absl::StatusCode::kInvalidArgument,
                                 "--chat-template"));
  EXPECT_TRUE(testing::FailsWith(ChatTemplate::Parse("{prompt} and {prompt}"), absl::StatusCode::kInvalidArgument,
                                 "tokenizer.chat_template"));
  RLJ_EXPECT_OK(ChatTemplate::Parse("chatml"));
}

TEST(ChatTemplate, OnePromptIsTheOneTurnConversation) {
  for (const char* spec : {"", "chatml", "llama3", "plain", "Q: {prompt}\nA:"}) {
    RLJ_ASSERT_OK_AND_ASSIGN(const ChatTemplate chat_template, ChatTemplate::Parse(spec));
    EXPECT_EQ(chat_template.Render("3+4="), chat_template.RenderChat({{"user", "3+4="}})) << spec;
  }
  RLJ_ASSERT_OK_AND_ASSIGN(const ChatTemplate chatml, ChatTemplate::Parse("chatml"));
  EXPECT_EQ(chatml.end_of_turn(), "<|im_end|>");
  RLJ_ASSERT_OK_AND_ASSIGN(const ChatTemplate plain, ChatTemplate::Parse("plain"));
  EXPECT_EQ(plain.end_of_turn(), "");
}

}  // namespace
}  // namespace rlj
