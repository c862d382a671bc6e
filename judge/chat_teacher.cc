// chat_teacher.cc: AskChatWith, the shared send → read → account path of chat teachers.
#include "judge/chat_teacher.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace rlj {

void ChatReplies::Remember(const std::vector<size_t>& indices) const {
  if (client == nullptr) return;
  std::vector<const TeacherAnswer*> keep;
  for (size_t i : indices) {
    if (i < sent.size()) keep.push_back(&sent[i]);
  }
  client->Remember(keep);
}

ChatReplies AskChatWith(TeacherClient& client, const ChatWireFormat& format, const std::vector<ChatQuestion>& questions,
                        SteadyTime deadline) {
  std::vector<TeacherAsk> asks;
  asks.reserve(questions.size());
  for (const ChatQuestion& question : questions) {
    asks.push_back(format.render(question));
    asks.back().bypass_cache = question.bypass_cache;
  }
  ChatReplies replies;
  replies.client = &client;
  replies.sent = client.Ask(std::move(asks), deadline);
  replies.answers.resize(questions.size());
  for (size_t i = 0; i < questions.size(); ++i) {
    const TeacherAnswer& sent = replies.sent[i];
    ChatAnswer& answer = replies.answers[i];
    if (sent.body) {
      try {
        answer = format.read(*sent.body);
      } catch (const std::exception& e) {  // a reader must not throw; if it does, the answer is unreadable
        answer = ChatAnswer();
        answer.kind = "parse";
        answer.code = absl::StatusCode::kInternal;
        answer.message = absl::StrCat("reading the teacher's answer failed: ", e.what());
        answer.raw = *sent.body;
      }
    } else {
      answer.ok = false;
      answer.code = sent.code;
      answer.kind = sent.kind;
      answer.message = sent.message;
    }
    answer.cache_hit = sent.cache_hit;
    answer.latency_ms = sent.latency_ms;
    answer.cost_usd = client.Account(sent, answer.tokens_in, answer.tokens_out, answer.ok);
    if (answer.cache_hit) {
      answer.tokens_in = 0;  // nothing was spent on a hit
      answer.tokens_out = 0;
    }
    answer.content = client.Redact(std::move(answer.content));
    answer.message = client.Redact(std::move(answer.message));
    answer.raw = client.Redact(std::move(answer.raw));
  }
  return replies;
}

}  // namespace rlj
