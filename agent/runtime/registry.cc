#include "agent/runtime/registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/runtime/reference.h"
#include "common/errno_status.h"
#include "common/registry_auth.h"
#include "common/status_macros.h"

namespace swarm::agent::runtime {
namespace {

using json = nlohmann::json;

constexpr const char* kManifestAccept =
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

struct Response {
  long status = 0;
  std::string body;
  std::string content_type;
  std::string www_authenticate;
};

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t CaptureHeader(char* data, size_t size, size_t n, void* out) {
  auto* r = static_cast<Response*>(out);
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string key = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    if (key == "content-type") r->content_type = value;
    if (key == "www-authenticate") r->www_authenticate = value;
  }
  if (absl::StartsWith(line, "HTTP/")) {  // a redirect's headers start over
    r->content_type.clear();
    r->www_authenticate.clear();
  }
  return size * n;
}

struct CurlHandle {
  CURL* h = curl_easy_init();
  ~CurlHandle() { curl_easy_cleanup(h); }
};

// Parses `Bearer realm="x",service="y",scope="z"` into its scheme and parameters.
std::map<std::string, std::string> ParseChallenge(const std::string& header, std::string* scheme) {
  std::map<std::string, std::string> params;
  size_t space = header.find(' ');
  *scheme = absl::AsciiStrToLower(header.substr(0, space));
  if (space == std::string::npos) return params;
  std::string rest = header.substr(space + 1);
  size_t i = 0;
  while (i < rest.size()) {
    size_t eq = rest.find('=', i);
    if (eq == std::string::npos) break;
    std::string key(absl::StripAsciiWhitespace(rest.substr(i, eq - i)));
    std::string value;
    size_t j = eq + 1;
    if (j < rest.size() && rest[j] == '"') {
      size_t end = rest.find('"', j + 1);
      value = rest.substr(j + 1, end - j - 1);
      j = end == std::string::npos ? rest.size() : end + 1;
    } else {
      size_t end = rest.find(',', j);
      value = rest.substr(j, end - j);
      j = end == std::string::npos ? rest.size() : end;
    }
    params[key] = value;
    while (j < rest.size() && (rest[j] == ',' || rest[j] == ' ')) ++j;
    i = j;
  }
  return params;
}

std::string UrlEncode(CURL* h, const std::string& s) {
  char* e = curl_easy_escape(h, s.c_str(), static_cast<int>(s.size()));
  std::string out = e;
  curl_free(e);
  return out;
}

// One pull's view of one repository: base URL and the authorization that works for it.
class Session {
 public:
  Session(const Reference& ref, const RegistryOptions& options) : ref_(ref), options_(options) {
    bool insecure = options.insecure_registries.count(ref.registry) > 0;
    base_ =
        absl::StrCat(insecure ? "http://" : "https://", ref.RegistryHost(), "/v2/", ref.repository);
    auto it = options.credentials.find(ref.registry);
    if (it != options.credentials.end()) creds_ = it->second;
  }

  // GET with authentication retried once after a 401 challenge.
  absl::StatusOr<Response> Get(const std::string& path, const std::string& accept) {
    ASSIGN_OR_RETURN(Response r, GetOnce(path, accept));
    if (r.status == 401 && !r.www_authenticate.empty()) {
      RETURN_IF_ERROR(Authenticate(r.www_authenticate));
      ASSIGN_OR_RETURN(r, GetOnce(path, accept));
    }
    if (r.status == 401) {
      return absl::PermissionDeniedError(absl::StrCat(
          "pulling ", ref_.String(), ": the registry refused our credentials (log in?)"));
    }
    if (r.status == 404) {
      return absl::NotFoundError(
          absl::StrCat("pulling ", ref_.String(), ": ", path, " not found in the registry"));
    }
    if (r.status != 200) {
      return absl::UnavailableError(
          absl::StrCat("pulling ", ref_.String(), ": GET ", path, " answered ", r.status));
    }
    return r;
  }

  // Downloads a blob into `file`, resuming from its current size. Returns the bytes
  // received over the network, or Cancelled when the progress callback said stop.
  absl::StatusOr<int64_t> DownloadBlob(const std::string& digest, int64_t size,
                                       const std::string& file) {
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", file));
    struct stat st;
    fstat(fd, &st);
    struct Sink {
      int fd;
      int64_t offset;  // where the next byte goes
      int64_t fetched = 0;
      int64_t total;
      bool restart = false;  // the server ignored our Range: start from zero
      bool cancelled = false;
      long status = 0;
      const std::string* digest;
      const RegistryOptions* options;
      CURL* h;
    } sink{fd, st.st_size, 0, size, false, false, 0, &digest, &options_, nullptr};
    if (size > 0 && sink.offset >= size) sink.offset = 0;  // stale or complete: fetch again
    CurlHandle c;
    sink.h = c.h;
    std::string url = absl::StrCat(base_, "/blobs/", digest);
    curl_slist* headers = AuthHeaders();
    curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.h, CURLOPT_FAILONERROR, 0L);
    if (sink.offset > 0) {
      curl_easy_setopt(c.h, CURLOPT_RANGE, absl::StrCat(sink.offset, "-").c_str());
    }
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(
        c.h, CURLOPT_WRITEFUNCTION, +[](char* data, size_t sz, size_t n, void* p) -> size_t {
          auto* s = static_cast<Sink*>(p);
          if (s->status == 0) {
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
            if (s->status == 200 && s->offset > 0) {
              // Full content instead of our range: start the file over.
              s->offset = 0;
              if (ftruncate(s->fd, 0) != 0) return 0;
            }
          }
          if (s->status != 200 && s->status != 206) return sz * n;  // error body: ignore
          if (pwrite(s->fd, data, sz * n, s->offset) != static_cast<ssize_t>(sz * n)) return 0;
          s->offset += sz * n;
          s->fetched += sz * n;
          if (s->options->progress &&
              !s->options->progress({*s->digest, s->offset, s->total, s->fetched, false})) {
            s->cancelled = true;
            return 0;
          }
          return sz * n;
        });
    CURLcode rc = curl_easy_perform(c.h);
    long status = 0;
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK && (status == 200 || status == 206)) {
      (void)!ftruncate(fd, sink.offset);
    }
    close(fd);
    if (sink.cancelled) {
      return absl::CancelledError(absl::StrCat("pulling blob ", digest, ": cancelled after ",
                                               sink.offset, " bytes (a new pull resumes)"));
    }
    if (rc != CURLE_OK) {
      return absl::UnavailableError(
          absl::StrCat("pulling blob ", digest, ": ", curl_easy_strerror(rc)));
    }
    if (status == 416) {  // our partial file is longer than the blob: start over
      unlink(file.c_str());
      return DownloadBlob(digest, size, file);
    }
    if (status != 200 && status != 206) {
      return absl::UnavailableError(
          absl::StrCat("pulling blob ", digest, ": the registry answered ", status));
    }
    if (options_.progress) options_.progress({digest, sink.offset, size, sink.fetched, true});
    return sink.fetched;
  }

 private:
  curl_slist* AuthHeaders() const {
    curl_slist* headers = nullptr;
    absl::MutexLock lock(&mu_);
    if (!authorization_.empty()) {
      headers = curl_slist_append(headers, absl::StrCat("Authorization: ", authorization_).c_str());
    }
    return headers;
  }

  absl::StatusOr<Response> GetOnce(const std::string& path, const std::string& accept) {
    CurlHandle c;
    Response r;
    std::string url = absl::StrCat(base_, path);
    curl_slist* headers = AuthHeaders();
    if (!accept.empty()) headers = curl_slist_append(headers, ("Accept: " + accept).c_str());
    curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c.h, CURLOPT_HEADERFUNCTION, CaptureHeader);
    curl_easy_setopt(c.h, CURLOPT_HEADERDATA, &r);
    CURLcode rc = curl_easy_perform(c.h);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      return absl::UnavailableError(
          absl::StrCat("pulling ", ref_.String(), ": GET ", url, ": ", curl_easy_strerror(rc)));
    }
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

  absl::Status Authenticate(const std::string& challenge) {
    std::string scheme;
    auto params = ParseChallenge(challenge, &scheme);
    if (scheme == "basic") {
      if (!creds_) {
        return absl::PermissionDeniedError(absl::StrCat(
            "pulling ", ref_.String(), ": the registry wants a user name and password"));
      }
      CurlHandle c;
      std::string plain = creds_->first + ":" + creds_->second;
      // Base64 through curl's own encoder is not public; do it here.
      static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      std::string enc;
      int val = 0, bits = -6;
      for (unsigned char ch : plain) {
        val = (val << 8) + ch;
        bits += 8;
        while (bits >= 0) {
          enc.push_back(b64[(val >> bits) & 0x3F]);
          bits -= 6;
        }
      }
      if (bits > -6) enc.push_back(b64[((val << 8) >> (bits + 8)) & 0x3F]);
      while (enc.size() % 4) enc.push_back('=');
      absl::MutexLock lock(&mu_);
      authorization_ = "Basic " + enc;
      return absl::OkStatus();
    }
    if (scheme != "bearer" || params["realm"].empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("pulling ", ref_.String(), ": unsupported authentication: ", challenge));
    }
    CurlHandle c;
    std::string url = params["realm"];
    std::string scope = params.count("scope")
                            ? params["scope"]
                            : absl::StrCat("repository:", ref_.repository, ":pull");
    absl::StrAppend(&url, url.find('?') == std::string::npos ? "?" : "&",
                    "service=", UrlEncode(c.h, params["service"]),
                    "&scope=", UrlEncode(c.h, scope));
    std::string body;
    curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &body);
    if (creds_) {
      curl_easy_setopt(c.h, CURLOPT_USERNAME, creds_->first.c_str());
      curl_easy_setopt(c.h, CURLOPT_PASSWORD, creds_->second.c_str());
    }
    CURLcode rc = curl_easy_perform(c.h);
    long status = 0;
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
      return absl::PermissionDeniedError(absl::StrCat("pulling ", ref_.String(),
                                                      ": getting a token from ", params["realm"],
                                                      " failed (", status, ")"));
    }
    json j = json::parse(body, nullptr, false);
    std::string token = j.is_object() ? j.value("token", j.value("access_token", "")) : "";
    if (token.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("pulling ", ref_.String(), ": the token server sent no token"));
    }
    absl::MutexLock lock(&mu_);
    authorization_ = "Bearer " + token;
    return absl::OkStatus();
  }

  const Reference ref_;
  const RegistryOptions& options_;
  std::string base_;
  std::optional<std::pair<std::string, std::string>> creds_;
  mutable absl::Mutex mu_;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
};

bool IsIndexType(const std::string& media_type, const json& body) {
  if (absl::StrContains(media_type, "index") || absl::StrContains(media_type, "list")) return true;
  return body.is_object() && body.contains("manifests") && !body.contains("layers");
}

}  // namespace

RegistryClient::RegistryClient(ImageStore& store, RegistryOptions options)
    : store_(store), options_(std::move(options)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

absl::StatusOr<std::string> RegistryClient::Pull(const std::string& text) {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  Session session(ref, options_);

  // The manifest, by digest when pinned (and then verified against it).
  std::string want = ref.digest.empty() ? ref.tag : ref.digest;
  ASSIGN_OR_RETURN(Response r, session.Get("/manifests/" + want, kManifestAccept));
  std::string digest = DigestBytes(r.body);
  if (!ref.digest.empty() && digest != ref.digest) {
    return absl::DataLossError(absl::StrCat("pulling ", ref.String(), ": the manifest hashes to ",
                                            digest, ", not the digest asked for"));
  }
  json manifest = json::parse(r.body, nullptr, false);
  if (manifest.is_discarded()) {
    return absl::DataLossError(absl::StrCat("pulling ", ref.String(), ": bad manifest JSON"));
  }
  if (IsIndexType(r.content_type, manifest)) {
    ASSIGN_OR_RETURN(std::string platform_digest, SelectPlatformManifest(r.body));
    ASSIGN_OR_RETURN(r, session.Get("/manifests/" + platform_digest, kManifestAccept));
    if (DigestBytes(r.body) != platform_digest) {
      return absl::DataLossError(absl::StrCat("pulling ", ref.String(), ": manifest ",
                                              platform_digest, " failed verification"));
    }
    digest = platform_digest;
    manifest = json::parse(r.body, nullptr, false);
  }
  if (!manifest.is_object() || !manifest.contains("config") || !manifest.contains("layers")) {
    return absl::DataLossError(absl::StrCat("pulling ", ref.String(),
                                            ": not a v2 / OCI image manifest (schema 1 is not "
                                            "supported)"));
  }
  if (!store_.HasBlob(digest)) {
    std::string tmp = store_.TempPath("manifest-" + digest.substr(7));
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, r.body.data(), r.body.size()) != static_cast<ssize_t>(r.body.size())) {
      if (fd >= 0) close(fd);
      return ErrnoToStatus(errno, "storing the manifest");
    }
    close(fd);
    RETURN_IF_ERROR(store_.CommitBlob(tmp, digest));
  }

  // The config and the layers: each downloaded (or resumed), then verified into the store.
  struct Blob {
    std::string digest, media_type;
    int64_t size;
    absl::Status status;
  };
  std::vector<Blob> blobs;
  blobs.push_back({manifest["config"].value("digest", ""),
                   "",
                   manifest["config"].value("size", int64_t{0}),
                   {}});
  std::vector<LayerDescriptor> layers;
  for (const auto& l : manifest["layers"]) {
    blobs.push_back(
        {l.value("digest", ""), l.value("mediaType", ""), l.value("size", int64_t{0}), {}});
    layers.push_back({blobs.back().digest, blobs.back().media_type});
  }
  for (const auto& b : blobs) {
    if (!IsValidDigest(b.digest)) {
      return absl::DataLossError(absl::StrCat("pulling ", ref.String(), ": bad blob digest \"",
                                              b.digest, "\" in the manifest"));
    }
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < blobs.size(); i = next++) {
      Blob& b = blobs[i];
      if (store_.HasBlob(b.digest)) continue;
      std::string partial = store_.TempPath("download-" + b.digest.substr(7));
      absl::StatusOr<int64_t> got = session.DownloadBlob(b.digest, b.size, partial);
      if (!got.ok()) {
        b.status = got.status();
        continue;
      }
      b.status = store_.CommitBlob(partial, b.digest);
    }
  };
  int n = std::max(1, std::min<int>(options_.max_concurrent_downloads, blobs.size()));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  for (const auto& b : blobs) RETURN_IF_ERROR(b.status);

  std::vector<std::string> tags;
  tags.push_back(ref.String());
  return store_.ImportImage(blobs[0].digest, layers, digest, tags);
}

absl::StatusOr<RegistryOptions> WithServiceCredentials(RegistryOptions options,
                                                       const std::string& ref,
                                                       const std::string& registry_auth) {
  if (registry_auth.empty()) return options;
  ASSIGN_OR_RETURN(Reference parsed, ParseReference(ref));
  absl::StatusOr<RegistryAuth> auth = DecodeRegistryAuth(registry_auth);
  if (!auth.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the service's credentials for ", parsed.registry,
        " do not decode: ", auth.status().message(), " (update the service --with-registry-auth)"));
  }
  // Never to another registry: a service whose image now names a different one (an update that
  // kept the old login) must not hand that login to it.
  if (!IsLoginFor(auth->server_address, parsed.registry)) return options;
  options.credentials[parsed.registry] = {auth->username, auth->password};
  return options;
}

}  // namespace swarm::agent::runtime
