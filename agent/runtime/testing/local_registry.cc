#include "agent/runtime/testing/local_registry.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/testing/test_image.h"

namespace swarm::agent::runtime::testing {
int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

long HttpStatus(const std::string& url) {
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  return status;
}

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(
    const std::vector<std::string>& cmd) {
  std::unique_ptr<LocalRegistry> r(new LocalRegistry());
  char tmpl[] = "/tmp/local_registry.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  r->dir_ = tmpl;
  r->addr_ = absl::StrCat("127.0.0.1:", FreePort());
  std::ofstream(r->dir_ + "/config.yml")
      << "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
      << r->dir_ << "/data\nhttp:\n  addr: " << r->addr_ << "\n";
  r->pid_ = fork();
  if (r->pid_ == 0) {
    // Its request log goes to a file, not into the test's output.
    const int log = open((r->dir_ + "/registry.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log >= 0) {
      dup2(log, 1);
      dup2(log, 2);
    }
    execl("/usr/bin/docker-registry", "docker-registry", "serve", (r->dir_ + "/config.yml").c_str(),
          nullptr);
    _exit(127);
  }
  const std::string v2 = absl::StrCat("http://", r->addr_, "/v2/");
  for (int i = 0; i < 200 && HttpStatus(v2) != 200; ++i) usleep(50000);
  if (HttpStatus(v2) != 200) {
    return absl::UnavailableError("docker-registry did not start (is it installed?)");
  }
  if (absl::Status s = BuildBusyboxRootfs(r->dir_ + "/rootfs"); !s.ok()) return s;
  LayoutOptions o;
  o.cmd = cmd;
  absl::StatusOr<std::string> digest =
      BuildOciLayout({r->dir_ + "/rootfs"}, r->dir_ + "/layout", o);
  if (!digest.ok()) return digest.status();
  r->manifest_digest_ = *digest;
  const std::string push = absl::StrCat(
      "skopeo --insecure-policy copy -q --preserve-digests --dest-tls-verify=false oci:", r->dir_,
      "/layout:latest docker://", r->addr_, "/test/busybox:latest");
  if (system(push.c_str()) != 0) return absl::InternalError("pushing with skopeo failed: " + push);
  return r;
}

LocalRegistry::~LocalRegistry() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty()) (void)RemoveAll(dir_);
}

}  // namespace swarm::agent::runtime::testing
