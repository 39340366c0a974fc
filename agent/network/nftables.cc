#include "agent/network/nftables.h"

#include <nftables/libnftables.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/network/netns.h"

namespace swarm::agent::network {

namespace {

absl::StatusOr<std::string> RunHere(const std::string& script, const std::string& what) {
  // A context per call: libnftables binds its netlink socket to the namespace of the thread
  // that uses it first, and a context is cheap next to the kernel transaction.
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return absl::ResourceExhaustedError(absl::StrCat(what, ": nft_ctx_new"));
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  std::string buffer(script);
  int rc = nft_run_cmd_from_buffer(ctx, buffer.c_str());
  absl::StatusOr<std::string> result;
  if (rc != 0) {
    const char* err = nft_ctx_get_error_buffer(ctx);
    result = absl::InternalError(
        absl::StrCat(what, ": nftables refused the ruleset: ",
                     absl::StripTrailingAsciiWhitespace(err != nullptr ? err : "(no message)")));
  } else {
    const char* out = nft_ctx_get_output_buffer(ctx);
    result = std::string(out != nullptr ? out : "");
  }
  nft_ctx_free(ctx);
  return result;
}

}  // namespace

absl::StatusOr<std::string> RunNft(int netns_fd, const std::string& script,
                                   const std::string& what) {
  if (netns_fd < 0) return RunHere(script, what);
  absl::StatusOr<std::string> result = absl::InternalError("not run");
  absl::Status status = RunInNetns(netns_fd, [&] {
    result = RunHere(script, what);
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

}  // namespace swarm::agent::network
