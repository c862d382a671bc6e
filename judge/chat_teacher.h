// chat_teacher.h: a teacher that answers chat questions (openai and anthropic in rubric mode): the
// interface rubric scoring and the ensemble's group ranking use, and AskChatWith, the one implementation
// over a TeacherClient given a backend's request renderer and answer reader.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "judge/http/rate_limiter.h"
#include "judge/teacher_client.h"

namespace rlj {

struct ChatQuestion {
  std::string system;  // may be empty
  std::string user;
  bool bypass_cache = false;  // see TeacherAsk::bypass_cache
};

struct ChatAnswer {
  bool ok = false;  // content holds the teacher's answer
  std::string content;
  absl::StatusCode code = absl::StatusCode::kOk;  // when !ok
  std::string kind;                               // error_kind when !ok
  std::string message;                            // redacted
  std::string raw;  // for the reward log: the content, the refusal, or the body when unreadable
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0;
  bool cache_hit = false;
  double latency_ms = 0;

  // The two ways a response reader finishes: `return answer.Failed(code, kind, message);` or
  // `return answer.Answered(content);` (the content is also what the reward log shows).
  ChatAnswer& Failed(absl::StatusCode error_code, std::string error_kind, std::string error_message) {
    ok = false;
    code = error_code;
    kind = std::move(error_kind);
    message = std::move(error_message);
    return *this;
  }
  ChatAnswer& Answered(std::string text) {
    ok = true;
    content = text;
    raw = std::move(text);
    return *this;
  }
};

// Answers of one AskChat, in order; Remember(i) caches answer i (call it for the answers the caller could
// use, so an unusable one is asked again next time).
class ChatReplies {
 public:
  std::vector<ChatAnswer> answers;
  void Remember(const std::vector<size_t>& indices) const;

  TeacherClient* client = nullptr;
  std::vector<TeacherAnswer> sent;  // what TeacherClient returned, for Remember
};

class ChatTeacher {
 public:
  virtual ~ChatTeacher() = default;
  // Every question answered (from the cache or the teacher), concurrently under the backend's limits.
  virtual ChatReplies AskChat(const std::vector<ChatQuestion>& questions, SteadyTime deadline) = 0;
  virtual std::string teacher_model() const = 0;
};

// A backend's wire format for chat: how a question becomes a request, how a 2xx body becomes an answer
// (content, refusal, usage). `read` sets ok/content or kind/message, raw, and the token counts.
struct ChatWireFormat {
  std::function<TeacherAsk(const ChatQuestion&)> render;
  std::function<ChatAnswer(const std::string& body)> read;
};

// Sends, reads, books usage and cost (into the answers too), redacts.
ChatReplies AskChatWith(TeacherClient& client, const ChatWireFormat& format, const std::vector<ChatQuestion>& questions,
                        SteadyTime deadline);

}  // namespace rlj
