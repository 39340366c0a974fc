#include "manager/controlapi/server.h"

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "common/id.h"
#include "common/ip.h"
#include "common/network_modes.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "manager/ca/ca.h"
#include "manager/ca/rotation.h"
#include "manager/controlapi/validation.h"
#include "manager/orchestrator/defaults.h"

namespace swarm::manager::controlapi {
namespace {

using Case = api::StoreAction::TargetCase;
using google::protobuf::util::MessageDifferencer;

constexpr char kUnlockKeySubsystem[] = "manager:unlock";

std::string Quote(const std::string& s) { return absl::StrCat("\"", s, "\""); }

const char* KindName(Case kind) {
  switch (kind) {
    case api::StoreAction::kNode:
      return "node";
    case api::StoreAction::kService:
      return "service";
    case api::StoreAction::kTask:
      return "task";
    case api::StoreAction::kNetwork:
      return "network";
    case api::StoreAction::kCluster:
      return "cluster";
    case api::StoreAction::kSecret:
      return "secret";
    case api::StoreAction::kConfig:
      return "config";
    default:
      return "object";
  }
}

// The name `node ls` shows and the names filter matches: the spec's, else the hostname.
const std::string& NodeName(const api::Node& n) {
  return n.spec().annotations().name().empty() ? n.description().hostname()
                                               : n.spec().annotations().name();
}

// A task's name: its own, else "<service>.<slot>.<id>" or "<service>.<node>.<id>".
std::string TaskName(const api::Task& t) {
  if (!t.annotations().name().empty()) return t.annotations().name();
  if (t.slot() != 0) {
    return absl::StrCat(t.service_annotations().name(), ".", t.slot(), ".", t.id());
  }
  return absl::StrCat(t.service_annotations().name(), ".", t.node_id(), ".", t.id());
}

// IDs of the objects of a kind whose name is `name` (names are unique for all kinds but
// nodes and tasks).
std::vector<std::string> IdsByName(const store::ReadTx& tx, Case kind, const std::string& name) {
  std::vector<std::string> out;
  if (kind == api::StoreAction::kNode) {
    for (const auto& n : tx.ListNodes()) {
      if (NodeName(*n) == name) out.push_back(n->id());
    }
  } else if (kind == api::StoreAction::kTask) {
    for (const auto& t : tx.ListTasks()) {
      if (TaskName(*t) == name) out.push_back(t->id());
    }
  } else if (auto id = tx.IdByName(kind, name)) {
    out.push_back(*id);
  }
  return out;
}

// Docker's lookup: a full ID, else a name, else a unique ID prefix.
absl::StatusOr<std::string> Resolve(const store::ReadTx& tx, Case kind, const std::string& input,
                                    bool allow_prefix = true) {
  const char* what = KindName(kind);
  if (input.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a ", what, " name or ID is required"));
  }
  std::vector<std::string> ids = tx.IdsByPrefix(kind, input);
  if (!ids.empty() && ids.front() == input) return input;
  std::vector<std::string> named = IdsByName(tx, kind, input);
  if (named.size() == 1) return named.front();
  if (named.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", input, " is ambiguous (", named.size(), " matches found by name); use an ID"));
  }
  if (allow_prefix && ids.size() == 1) return ids.front();
  if (allow_prefix && ids.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", input, " is ambiguous (", ids.size(),
                                                   " matches found); use a longer ID prefix"));
  }
  return absl::NotFoundError(absl::StrCat(what, " ", input, " not found"));
}

absl::Status RequireVersion(bool has, const std::string& field) {
  if (!has) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is required: send the version of the object you read (its ",
                     "meta.version), so that concurrent changes are not overwritten"));
  }
  return absl::OkStatus();
}

// FAILED_PRECONDITION when the request was computed from another version of the object.
absl::Status CheckVersion(const api::Version& requested, const api::Meta& meta,
                          const std::string& what) {
  if (requested.index() != meta.version().index()) {
    return absl::FailedPreconditionError(
        absl::StrCat("update out of sequence: ", what, " is at version ", meta.version().index(),
                     " but the update was computed from version ", requested.index(),
                     "; get it again and reapply your change"));
  }
  return absl::OkStatus();
}

// A name for a service created without one, in the spirit of Docker's ("eager-hopper"): an
// adjective and a pioneer of computing, joined by '-' (service names are DNS labels).
std::string RandomServiceName(Random& r) {
  static constexpr const char* kAdjectives[] = {
      "agile", "bold",   "brave", "calm",   "clever", "eager",   "fervent", "gentle",
      "happy", "keen",   "lucid", "merry",  "nimble", "quiet",   "serene",  "sharp",
      "silly", "steady", "swift", "tender", "upbeat", "vibrant", "witty",   "zealous"};
  static constexpr const char* kNames[] = {
      "allen",   "babbage", "backus",     "cerf",     "dijkstra", "hamilton", "hopper",
      "kay",     "knuth",   "lamport",    "liskov",   "lovelace", "mccarthy", "perlman",
      "ritchie", "shannon", "sutherland", "thompson", "torvalds", "turing",   "wirth"};
  return absl::StrCat(kAdjectives[r.Uniform(std::size(kAdjectives))], "-",
                      kNames[r.Uniform(std::size(kNames))]);
}

// ALREADY_EXISTS when another object of the kind has the name, compared without case as in
// SwarmKit (service names are DNS names, and two networks "Web" and "web" would confuse
// everyone). The store keeps names unique that way and re-checks at apply time; this check
// gives the error its details (which object holds the name).
absl::Status CheckNameFree(const store::ReadTx& tx, Case kind, const std::string& name,
                           const std::string& self_id) {
  std::optional<std::string> id = tx.IdByName(kind, name);
  if (!id || *id == self_id) return absl::OkStatus();
  std::string other = name;
  switch (kind) {
    case api::StoreAction::kService:
      if (auto o = tx.GetService(*id)) other = o->spec().annotations().name();
      break;
    case api::StoreAction::kNetwork:
      if (auto o = tx.GetNetwork(*id)) other = o->spec().annotations().name();
      break;
    case api::StoreAction::kSecret:
      if (auto o = tx.GetSecret(*id)) other = o->spec().annotations().name();
      break;
    case api::StoreAction::kConfig:
      if (auto o = tx.GetConfig(*id)) other = o->spec().annotations().name();
      break;
    default:
      break;
  }
  return absl::AlreadyExistsError(absl::StrCat(
      KindName(kind), " name ", Quote(name), " is already in use by ", KindName(kind), " ", *id,
      other == name ? "" : absl::StrCat(" (named ", Quote(other), ")"), "; choose another name"));
}

// ---- list filters: AND across fields, OR within one ----

bool AnyOf(const google::protobuf::RepeatedPtrField<std::string>& wanted, const std::string& s) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), s) != wanted.end();
}

bool AnyPrefix(const google::protobuf::RepeatedPtrField<std::string>& prefixes,
               const std::string& s) {
  if (prefixes.empty()) return true;
  for (const std::string& p : prefixes) {
    if (absl::StartsWith(s, p)) return true;
  }
  return false;
}

template <typename E>
bool AnyEnum(const google::protobuf::RepeatedField<int>& wanted, E value) {
  return wanted.empty() ||
         std::find(wanted.begin(), wanted.end(), static_cast<int>(value)) != wanted.end();
}

bool AnyNumber(const google::protobuf::RepeatedField<uint64_t>& wanted, uint64_t value) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), value) != wanted.end();
}

// Every wanted key present, with the wanted value unless that is empty.
bool LabelsMatch(const google::protobuf::Map<std::string, std::string>& wanted,
                 const google::protobuf::Map<std::string, std::string>& have) {
  for (const auto& [key, value] : wanted) {
    auto it = have.find(key);
    if (it == have.end() || (!value.empty() && it->second != value)) return false;
  }
  return true;
}

// The filters every named kind shares.
template <typename Filters, typename T>
bool CommonFiltersMatch(const Filters& f, const T& o) {
  const api::Annotations& a = o.spec().annotations();
  return AnyOf(f.names(), a.name()) && AnyPrefix(f.id_prefixes(), o.id()) &&
         AnyPrefix(f.name_prefixes(), a.name()) && LabelsMatch(f.labels(), a.labels());
}

// ---- redaction ----

// Registry credentials (--with-registry-auth) go to the agents, never back to a caller.
void RedactSpec(api::TaskSpec* spec) {
  if (!spec->container().pull_options().registry_auth().empty()) {
    spec->mutable_container()->mutable_pull_options()->clear_registry_auth();
    if (spec->container().pull_options().ByteSizeLong() == 0) {
      spec->mutable_container()->clear_pull_options();
    }
  }
}

api::Service Redacted(api::Service s) {
  RedactSpec(s.mutable_spec()->mutable_task_template());
  if (s.has_previous_spec()) RedactSpec(s.mutable_previous_spec()->mutable_task_template());
  return s;
}

api::Task Redacted(api::Task t) {
  RedactSpec(t.mutable_spec());
  return t;
}

api::Secret Redacted(api::Secret s) {
  s.mutable_spec()->clear_data();
  return s;
}

api::Cluster Redacted(api::Cluster c) {
  c.mutable_root_ca()->clear_ca_key();
  if (c.root_ca().has_root_rotation()) {
    c.mutable_root_ca()->mutable_root_rotation()->clear_ca_key();
  }
  c.mutable_spec()->mutable_ca_config()->clear_signing_ca_key();
  c.clear_unlock_keys();
  c.clear_network_bootstrap_keys();
  return c;
}

// ---- services ----

// Resolves the spec's network, secret and config references to IDs; INVALID_ARGUMENT naming
// any that does not exist.
absl::Status ResolveReferences(const store::ReadTx& tx, api::ServiceSpec* spec) {
  api::TaskSpec* task = spec->mutable_task_template();
  std::set<std::string> networks;
  for (api::NetworkAttachmentConfig& n : *task->mutable_networks()) {
    if (IsNodeLocalNetwork(n.target())) continue;  // not an object: the node's own
    auto id = Resolve(tx, api::StoreAction::kNetwork, n.target());
    if (id.status().code() == absl::StatusCode::kNotFound) {
      return absl::InvalidArgumentError(
          absl::StrCat("network ", Quote(n.target()),
                       " not found: create it with swarmctl network create --driver overlay ",
                       n.target(), ", or check its name (swarmctl network ls)"));
    }
    if (!id.ok()) return absl::InvalidArgumentError(std::string(id.status().message()));
    store::Ptr<api::Network> net = tx.GetNetwork(*id);
    if (net->spec().ingress()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a service cannot be attached to the ingress network ",
                       Quote(net->spec().annotations().name()),
                       " explicitly; publish ports (--publish) to use the routing mesh"));
    }
    if (net->pending_delete()) {
      return absl::InvalidArgumentError(
          absl::StrCat("network ", Quote(net->spec().annotations().name()), " is being removed"));
    }
    if (!networks.insert(*id).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "network ", Quote(net->spec().annotations().name()), " is attached more than once"));
    }
    n.set_target(*id);
  }
  if (!task->has_container()) return absl::OkStatus();
  api::ContainerSpec* c = task->mutable_container();
  for (api::SecretReference& ref : *c->mutable_secrets()) {
    const std::string& input = ref.secret_id().empty() ? ref.secret_name() : ref.secret_id();
    auto id = Resolve(tx, api::StoreAction::kSecret, input, /*allow_prefix=*/false);
    if (!id.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secret ", Quote(input), " not found: create it first with swarmctl secret create ",
          input, " <file>"));
    }
    if (ref.secret_name().empty()) {
      ref.set_secret_name(tx.GetSecret(*id)->spec().annotations().name());
    }
    ref.set_secret_id(*id);
  }
  for (api::ConfigReference& ref : *c->mutable_configs()) {
    const std::string& input = ref.config_id().empty() ? ref.config_name() : ref.config_id();
    auto id = Resolve(tx, api::StoreAction::kConfig, input, /*allow_prefix=*/false);
    if (!id.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config ", Quote(input), " not found: create it first with swarmctl config create ",
          input, " <file>"));
    }
    if (ref.config_name().empty()) {
      ref.set_config_name(tx.GetConfig(*id)->spec().annotations().name());
    }
    ref.set_config_id(*id);
  }
  return absl::OkStatus();
}

// ALREADY_EXISTS when a port the spec publishes is taken by another service: any published
// port collides with another's ingress port (the routing mesh opens it on every node), and an
// ingress port collides with another's host-mode port too. Host-mode ports of different
// services may share a number: the scheduler keeps them on different nodes.
absl::Status CheckPortConflicts(const store::ReadTx& tx, const api::ServiceSpec& spec,
                                const std::string& self_id) {
  for (const api::PortConfig& p : spec.endpoint_spec().ports()) {
    if (p.published_port() == 0) continue;
    for (const auto& other : tx.ListServices()) {
      if (other->id() == self_id) continue;
      std::vector<const api::PortConfig*> taken;
      for (const auto& q : other->spec().endpoint_spec().ports()) taken.push_back(&q);
      for (const auto& q : other->endpoint().ports()) taken.push_back(&q);
      for (const api::PortConfig* q : taken) {
        if (q->published_port() != p.published_port() || q->protocol() != p.protocol()) continue;
        const bool q_ingress = q->publish_mode() == api::PUBLISH_MODE_INGRESS;
        if (!q_ingress && p.publish_mode() != api::PUBLISH_MODE_INGRESS) continue;
        return absl::AlreadyExistsError(
            absl::StrCat("port ", PortName(p), " is already in use by service ",
                         Quote(other->spec().annotations().name()), " (", other->id(), ")",
                         q_ingress ? " as an ingress port"
                                   : " in host mode, and an ingress port is opened on every node",
                         "; publish another port, or change that service first"));
      }
    }
  }
  return absl::OkStatus();
}

// ALREADY_EXISTS when the spec's subnet overlaps a subnet another network asked for or was
// given by the allocator: two networks with one address range would route each other's traffic.
absl::Status CheckSubnetFree(const store::ReadTx& tx, const api::NetworkSpec& spec) {
  for (const api::IPAMConfig& c : spec.ipam().configs()) {
    std::optional<IpNetwork> mine = ParseCidr(c.subnet());
    if (!mine) continue;
    for (const auto& n : tx.ListNetworks()) {
      std::vector<const api::IPAMConfig*> theirs;
      for (const auto& o : n->spec().ipam().configs()) theirs.push_back(&o);
      for (const auto& o : n->ipam().configs()) theirs.push_back(&o);
      for (const api::IPAMConfig* o : theirs) {
        std::optional<IpNetwork> other = ParseCidr(o->subnet());
        if (!other || !(other->Contains(*mine) || mine->Contains(*other))) continue;
        return absl::AlreadyExistsError(absl::StrCat("subnet ", c.subnet(), " overlaps network ",
                                                     Quote(n->spec().annotations().name()), " (",
                                                     o->subnet(), "); choose another --subnet"));
      }
    }
  }
  return absl::OkStatus();
}

// The names of the services whose current spec satisfies uses, sorted.
std::vector<std::string> ServicesUsing(const store::ReadTx& tx,
                                       const std::function<bool(const api::Service&)>& uses) {
  std::vector<std::string> names;
  for (const auto& s : tx.ListServices()) {
    if (uses(*s)) names.push_back(s->spec().annotations().name());
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status InUseError(const std::string& kind, const std::string& name,
                        const std::vector<std::string>& services) {
  return absl::FailedPreconditionError(
      absl::StrCat(kind, " ", Quote(name), " is in use by the following service",
                   services.size() == 1 ? "" : "s", ": ", absl::StrJoin(services, ", "),
                   "; remove it from ", services.size() == 1 ? "that service" : "those services",
                   " (swarmctl service update --", kind, "-rm ", name, ") first"));
}

// Carries the stored registry credentials over when an update does not send any (Get never
// returns them, so a read-modify-write would otherwise drop them), as Docker does.
void KeepRegistryAuth(const api::ServiceSpec& current, api::ServiceSpec* next) {
  if (!next->task_template().has_container() || !current.task_template().has_container()) return;
  const std::string& auth = current.task_template().container().pull_options().registry_auth();
  if (auth.empty() || !next->task_template().container().pull_options().registry_auth().empty()) {
    return;
  }
  next->mutable_task_template()->mutable_container()->mutable_pull_options()->set_registry_auth(
      auth);
}

// ---- cluster ----

void ExpireBlacklist(api::Cluster* c, absl::Time now) {
  auto* list = c->mutable_blacklisted_certificates();
  for (auto it = list->begin(); it != list->end();) {
    if (it->second.has_expiry() &&
        FromTimestamp(it->second.expiry()) + Server::kBlacklistGrace < now) {
      it = list->erase(it);
    } else {
      ++it;
    }
  }
}

// The greatest validity a node certificate of this cluster can have: how long a removed
// node's certificate must be refused when its own expiry cannot be read.
absl::Duration MaxCertValidity(const api::Cluster& c) {
  absl::Duration d = ca::kDefaultNodeCertValidity;
  if (c.spec().ca_config().has_node_cert_expiry()) {
    d = std::max(d, ToDuration(c.spec().ca_config().node_cert_expiry()));
  }
  return d;
}

template <typename T>
using Getter = store::Ptr<T> (store::ReadTx::*)(const std::string&) const;

// The stored object after a write (with its new version), or what was written if it is gone.
template <typename T>
T Reread(store::MemoryStore* store, Getter<T> get, const T& written) {
  store::Ptr<T> o;
  store->View([&](const store::ReadTx& tx) { o = (tx.*get)(written.id()); });
  return o ? *o : written;
}

// ---- secrets and configs ----
// The control API treats the two kinds alike; BlobKind<T> says what differs.

template <typename T>
struct BlobKind;

template <>
struct BlobKind<api::Secret> {
  using Spec = api::SecretSpec;
  static constexpr Case kCase = api::StoreAction::kSecret;
  static constexpr char kName[] = "secret";
  static constexpr Getter<api::Secret> kGet = &store::ReadTx::GetSecret;
  static std::vector<store::Ptr<api::Secret>> List(const store::ReadTx& tx) {
    return tx.ListSecrets();
  }
  static absl::Status Validate(const Spec& spec) { return ValidateSecretSpec(spec); }
  // Created by the swarm itself: never listed, changed or removed through the API.
  static bool Internal(const api::Secret& s) { return s.internal(); }
  // What a caller gets back: never the data.
  static api::Secret Shown(api::Secret s) { return Redacted(std::move(s)); }
  // Whether an update leaves what is not a label alone (besides name and data).
  static bool SameSource(const Spec& want, const Spec& have) {
    return MessageDifferencer::Equals(want.templating(), have.templating()) &&
           MessageDifferencer::Equals(want.driver(), have.driver());
  }
  static bool UsedBy(const api::Service& s, const std::string& id) {
    for (const auto& r : s.spec().task_template().container().secrets()) {
      if (r.secret_id() == id) return true;
    }
    return false;
  }
};

template <>
struct BlobKind<api::Config> {
  using Spec = api::ConfigSpec;
  static constexpr Case kCase = api::StoreAction::kConfig;
  static constexpr char kName[] = "config";
  static constexpr Getter<api::Config> kGet = &store::ReadTx::GetConfig;
  static std::vector<store::Ptr<api::Config>> List(const store::ReadTx& tx) {
    return tx.ListConfigs();
  }
  static absl::Status Validate(const Spec& spec) { return ValidateConfigSpec(spec); }
  static bool Internal(const api::Config&) { return false; }
  static api::Config Shown(api::Config c) { return c; }
  static bool SameSource(const Spec& want, const Spec& have) {
    return MessageDifferencer::Equals(want.templating(), have.templating());
  }
  static bool UsedBy(const api::Service& s, const std::string& id) {
    for (const auto& r : s.spec().task_template().container().configs()) {
      if (r.config_id() == id) return true;
    }
    return false;
  }
};

template <typename T>
absl::Status GetBlob(store::MemoryStore* store, const std::string& input, T* out) {
  using K = BlobKind<T>;
  absl::Status s;
  store->View([&](const store::ReadTx& tx) {
    auto id = Resolve(tx, K::kCase, input);
    if (!id.ok()) {
      s = id.status();
      return;
    }
    *out = K::Shown(*(tx.*K::kGet)(*id));
  });
  return s;
}

template <typename T, typename Filters>
void ListBlobs(store::MemoryStore* store, const Filters& filters,
               google::protobuf::RepeatedPtrField<T>* out) {
  using K = BlobKind<T>;
  store->View([&](const store::ReadTx& tx) {
    for (const auto& o : K::List(tx)) {
      if (!K::Internal(*o) && CommonFiltersMatch(filters, *o)) *out->Add() = K::Shown(*o);
    }
  });
}

// spec is null when the request has none; new_id is only called for a valid spec.
template <typename T>
absl::Status CreateBlob(store::MemoryStore* store, const typename BlobKind<T>::Spec* spec,
                        const std::function<std::string()>& new_id, T* out) {
  using K = BlobKind<T>;
  if (spec == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("a ", K::kName, " spec is required"));
  RETURN_IF_ERROR(K::Validate(*spec));
  T o;
  o.set_id(new_id());
  *o.mutable_spec() = *spec;
  RETURN_IF_ERROR(store->Update([&](store::WriteTx& tx) -> absl::Status {
    RETURN_IF_ERROR(CheckNameFree(tx, K::kCase, o.spec().annotations().name(), ""));
    tx.CreateObject(o);
    return absl::OkStatus();
  }));
  *out = K::Shown(Reread(store, K::kGet, o));
  return absl::OkStatus();
}

// Only labels change; version and spec are null when the request has none.
template <typename T>
absl::Status UpdateBlob(store::MemoryStore* store, const std::string& input,
                        const api::Version* version, const typename BlobKind<T>::Spec* spec,
                        T* out) {
  using K = BlobKind<T>;
  RETURN_IF_ERROR(RequireVersion(version != nullptr, absl::StrCat(K::kName, "_version")));
  if (spec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("the ", K::kName, "'s new spec is required"));
  }
  RETURN_IF_ERROR(ValidateLabels(spec->annotations().labels(), absl::StrCat(K::kName, " label")));
  T o;
  RETURN_IF_ERROR(store->Update([&](store::WriteTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const std::string id, Resolve(tx, K::kCase, input));
    o = *(tx.*K::kGet)(id);
    const std::string& name = o.spec().annotations().name();
    RETURN_IF_ERROR(CheckVersion(*version, o.meta(), absl::StrCat(K::kName, " ", name)));
    if (K::Internal(o)) {
      return absl::InvalidArgumentError(absl::StrCat(
          K::kName, " ", Quote(name), " is managed by the swarm and cannot be changed"));
    }
    // Get never returns a secret's data, so an update that sends none keeps it.
    if (spec->annotations().name() != name ||
        (!spec->data().empty() && spec->data() != o.spec().data()) ||
        !K::SameSource(*spec, o.spec())) {
      return absl::InvalidArgumentError(
          absl::StrCat("only a ", K::kName, "'s labels can be changed; to change ", Quote(name),
                       "'s name or data, create a new ", K::kName, " and switch services to it"));
    }
    *o.mutable_spec()->mutable_annotations()->mutable_labels() = spec->annotations().labels();
    tx.UpdateObject(o);
    return absl::OkStatus();
  }));
  *out = K::Shown(Reread(store, K::kGet, o));
  return absl::OkStatus();
}

// FAILED_PRECONDITION while a service still uses it.
template <typename T>
absl::Status RemoveBlob(store::MemoryStore* store, const std::string& input) {
  using K = BlobKind<T>;
  return store->Update([&](store::WriteTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const std::string id, Resolve(tx, K::kCase, input));
    store::Ptr<T> o = (tx.*K::kGet)(id);
    const std::string& name = o->spec().annotations().name();
    if (K::Internal(*o)) {
      return absl::InvalidArgumentError(absl::StrCat(
          K::kName, " ", Quote(name), " is managed by the swarm and cannot be removed"));
    }
    std::vector<std::string> users =
        ServicesUsing(tx, [&](const api::Service& s) { return K::UsedBy(s, id); });
    if (!users.empty()) return InUseError(K::kName, name, users);
    tx.RemoveObject(*o);
    return absl::OkStatus();
  });
}

}  // namespace

std::string UnlockKeyOf(const api::Cluster& cluster) {
  if (!cluster.spec().encryption_config().auto_lock_managers()) return "";
  for (const api::EncryptionKey& k : cluster.unlock_keys()) {
    if (k.subsystem() == kUnlockKeySubsystem) return k.key();
  }
  return "";
}

Server::Server(store::MemoryStore* store, Options options)
    : store_(store), options_(std::move(options)) {}

absl::Status Server::Authorize(const grpc::ServerContext* ctx) const {
  if (!options_.require_manager) return absl::OkStatus();
  if (ctx == nullptr) {
    return absl::PermissionDeniedError("the control API needs a swarm-manager certificate");
  }
  absl::Status s = tls::RequireRole(*ctx, {tls::kManagerRole, tls::kOperatorRole});
  if (s.ok() || s.code() == absl::StatusCode::kPermissionDenied) return s;
  return absl::PermissionDeniedError(
      absl::StrCat("the control API needs a ", tls::kManagerRole, " or ", tls::kOperatorRole,
                   " certificate over this listener (", s.message(),
                   "); run swarmctl on a manager node to use its local socket, or get an operator "
                   "certificate there with swarmctl swarm ca client-cert"));
}

grpc::Status Server::Serve(grpc::ServerContext* ctx, Access access,
                           const std::function<absl::Status()>& fn) {
  if (absl::Status s = Authorize(ctx); !s.ok()) return ToGrpcStatus(s);
  if (access == Access::kRead) {
    if (options_.sync) {
      if (absl::Status s = options_.sync(); !s.ok()) return ToGrpcStatus(s);
    }
    return ToGrpcStatus(fn());
  }
  if (access == Access::kConcurrentWrite) return ToGrpcStatus(fn());
  absl::MutexLock lock(&write_mu_);
  return ToGrpcStatus(fn());
}

template <typename T>
T Server::WithRandom(const std::function<T(Random&)>& fn) {
  absl::MutexLock lock(&random_mu_);
  return fn(*options_.random);
}

std::string Server::NewObjectId() {
  return WithRandom<std::string>([](Random& r) { return NewId(r); });
}

// ---- nodes ----

grpc::Status Server::GetNode(grpc::ServerContext* ctx, const api::GetNodeRequest* req,
                             api::GetNodeResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    absl::Status s;
    store_->View([&](const store::ReadTx& tx) {
      auto id = Resolve(tx, api::StoreAction::kNode, req->node_id());
      if (!id.ok()) {
        s = id.status();
        return;
      }
      *resp->mutable_node() = *tx.GetNode(*id);
    });
    return s;
  });
}

grpc::Status Server::ListNodes(grpc::ServerContext* ctx, const api::ListNodesRequest* req,
                               api::ListNodesResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    const auto& f = req->filters();
    store_->View([&](const store::ReadTx& tx) {
      for (const auto& n : tx.ListNodes()) {
        if (AnyOf(f.names(), NodeName(*n)) && AnyPrefix(f.id_prefixes(), n->id()) &&
            AnyPrefix(f.name_prefixes(), NodeName(*n)) &&
            LabelsMatch(f.labels(), n->spec().annotations().labels()) &&
            LabelsMatch(f.engine_labels(), n->description().engine().labels()) &&
            AnyEnum(f.memberships(), n->spec().membership()) && AnyEnum(f.roles(), n->role()) &&
            AnyEnum(f.availabilities(), n->spec().availability())) {
          *resp->add_nodes() = *n;
        }
      }
    });
    return absl::OkStatus();
  });
}

grpc::Status Server::UpdateNode(grpc::ServerContext* ctx, const api::UpdateNodeRequest* req,
                                api::UpdateNodeResponse* resp) {
  return Serve(ctx, Access::kWrite, [&] { return DoUpdateNode(*req, resp); });
}

absl::Status Server::DoUpdateNode(const api::UpdateNodeRequest& req,
                                  api::UpdateNodeResponse* resp) {
  RETURN_IF_ERROR(RequireVersion(req.has_node_version(), "node_version"));
  if (!req.has_spec()) return absl::InvalidArgumentError("the node's new spec is required");
  RETURN_IF_ERROR(ValidateNodeSpec(req.spec()));

  // The checks that may consult Raft run outside the store's lock; the version check at
  // apply time catches a node that changed in between.
  api::Node node;
  absl::Status s;
  store_->View([&](const store::ReadTx& tx) {
    auto id = Resolve(tx, api::StoreAction::kNode, req.node_id());
    if (!id.ok()) {
      s = id.status();
      return;
    }
    node = *tx.GetNode(*id);
    s = CheckVersion(req.node_version(), node.meta(), "node " + node.id());
    if (!s.ok()) return;
    if (node.spec().desired_role() == api::NODE_ROLE_MANAGER &&
        req.spec().desired_role() == api::NODE_ROLE_WORKER) {
      int managers = 0;
      for (const auto& n : tx.ListNodes()) {
        if (n->spec().desired_role() == api::NODE_ROLE_MANAGER) ++managers;
      }
      if (managers <= 1) {
        s = absl::FailedPreconditionError(absl::StrCat(
            "node ", node.id(),
            " is the last manager of the swarm and cannot be demoted; promote another node "
            "first (swarmctl node promote <node>)"));
      }
    }
  });
  RETURN_IF_ERROR(s);
  if (node.spec().membership() == api::NODE_MEMBERSHIP_ACCEPTED &&
      req.spec().membership() == api::NODE_MEMBERSHIP_PENDING) {
    return absl::InvalidArgumentError(absl::StrCat(
        "node ", node.id(), " was accepted and cannot go back to pending; remove it instead"));
  }
  if (node.spec().desired_role() != req.spec().desired_role() && options_.check_role_change) {
    RETURN_IF_ERROR(options_.check_role_change(node, req.spec().desired_role()));
  }

  RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
    store::Ptr<api::Node> current = tx.GetNode(node.id());
    if (!current) return absl::NotFoundError(absl::StrCat("node ", node.id(), " not found"));
    RETURN_IF_ERROR(CheckVersion(req.node_version(), current->meta(), "node " + node.id()));
    node = *current;
    *node.mutable_spec() = req.spec();
    tx.UpdateObject(node);
    return absl::OkStatus();
  }));
  *resp->mutable_node() = Reread(store_, &store::ReadTx::GetNode, node);
  return absl::OkStatus();
}

grpc::Status Server::RemoveNode(grpc::ServerContext* ctx, const api::RemoveNodeRequest* req,
                                api::RemoveNodeResponse*) {
  return Serve(ctx, Access::kWrite, [&] { return DoRemoveNode(*req); });
}

absl::Status Server::DoRemoveNode(const api::RemoveNodeRequest& req) {
  api::Node node;
  bool last_manager = false;
  absl::Status s;
  store_->View([&](const store::ReadTx& tx) {
    auto id = Resolve(tx, api::StoreAction::kNode, req.node_id());
    if (!id.ok()) {
      s = id.status();
      return;
    }
    node = *tx.GetNode(*id);
    int managers = 0;
    for (const auto& n : tx.ListNodes()) {
      if (n->id() != node.id() && (n->spec().desired_role() == api::NODE_ROLE_MANAGER ||
                                   n->role() == api::NODE_ROLE_MANAGER)) {
        ++managers;
      }
    }
    last_manager = managers == 0;
  });
  RETURN_IF_ERROR(s);
  const bool manager =
      node.spec().desired_role() == api::NODE_ROLE_MANAGER || node.role() == api::NODE_ROLE_MANAGER;
  if (manager) {
    if (!req.force()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", node.id(),
          " is a cluster manager and is a member of the raft cluster. It must be demoted to "
          "worker before removal (swarmctl node demote ",
          node.id(), ")"));
    }
    if (last_manager) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", node.id(),
          " is the last manager of the swarm and cannot be removed, even with --force; to end "
          "the swarm, run swarmctl swarm leave --force on it"));
    }
    if (options_.check_role_change) {
      RETURN_IF_ERROR(options_.check_role_change(node, api::NODE_ROLE_WORKER));
    }
  }
  if (!req.force() && node.status().state() != api::NODE_STATE_DOWN) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", node.id(),
        " is not down and can't be removed; stop swarmd on it (or let it leave with swarmctl "
        "swarm leave), or remove it anyway with --force"));
  }
  const absl::Time now = options_.clock->Now();
  return store_->Update([&](store::WriteTx& tx) -> absl::Status {
    store::Ptr<api::Node> current = tx.GetNode(node.id());
    if (!current) return absl::NotFoundError(absl::StrCat("node ", node.id(), " not found"));
    // The checks above ran on what was read then; a node that changed since is checked again.
    if (current->meta().version().index() != node.meta().version().index()) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", node.id(), " changed while it was being removed; try again"));
    }
    // Its certificate must be refused from now on, until it expires.
    auto clusters = tx.ListClusters();
    if (!clusters.empty()) {
      api::Cluster c = *clusters.front();
      api::BlacklistedCertificate entry;
      absl::Time expiry = now + MaxCertValidity(c);
      if (!node.certificate().certificate().empty()) {
        if (auto root = ca::RootCA::Load(c.root_ca().ca_cert(), ""); root.ok()) {
          if (auto id = root->Verify(node.certificate().certificate(), now); id.ok()) {
            expiry = id->not_after;
          }
        }
      }
      *entry.mutable_expiry() = ToTimestamp(expiry);
      (*c.mutable_blacklisted_certificates())[node.id()] = entry;
      ExpireBlacklist(&c, now);
      tx.UpdateObject(c);
    }
    tx.RemoveObject(node);
    return absl::OkStatus();
  });
}

// ---- tasks ----

grpc::Status Server::GetTask(grpc::ServerContext* ctx, const api::GetTaskRequest* req,
                             api::GetTaskResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    absl::Status s;
    store_->View([&](const store::ReadTx& tx) {
      auto id = Resolve(tx, api::StoreAction::kTask, req->task_id());
      if (!id.ok()) {
        s = id.status();
        return;
      }
      *resp->mutable_task() = Redacted(*tx.GetTask(*id));
    });
    return s;
  });
}

grpc::Status Server::ListTasks(grpc::ServerContext* ctx, const api::ListTasksRequest* req,
                               api::ListTasksResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    const auto& f = req->filters();
    store_->View([&](const store::ReadTx& tx) {
      // Start from an index when a filter allows it: `service ps` on a large cluster.
      std::vector<store::Ptr<api::Task>> candidates;
      if (!f.service_ids().empty() || !f.node_ids().empty()) {
        std::map<std::string, store::Ptr<api::Task>> by_id;
        const bool by_service = !f.service_ids().empty();
        const std::set<std::string> keys(
            by_service ? f.service_ids().begin() : f.node_ids().begin(),
            by_service ? f.service_ids().end() : f.node_ids().end());
        for (const std::string& key : keys) {
          for (auto& t : by_service ? tx.TasksByService(key) : tx.TasksByNode(key)) {
            by_id.emplace(t->id(), t);
          }
        }
        for (auto& [id, t] : by_id) candidates.push_back(t);
      } else {
        candidates = tx.ListTasks();
      }
      for (const auto& t : candidates) {
        const std::string name = TaskName(*t);
        const char* runtime = t->spec().has_attachment() ? "attachment" : "container";
        if (!AnyOf(f.names(), name) || !AnyPrefix(f.id_prefixes(), t->id()) ||
            !AnyPrefix(f.name_prefixes(), name) ||
            !LabelsMatch(f.labels(), t->annotations().labels()) ||
            !AnyOf(f.service_ids(), t->service_id()) || !AnyOf(f.node_ids(), t->node_id()) ||
            !AnyEnum(f.desired_states(), t->desired_state()) || !AnyOf(f.runtimes(), runtime) ||
            !AnyNumber(f.slots(), t->slot())) {
          continue;
        }
        if (f.up_to_date()) {
          store::Ptr<api::Service> svc = tx.GetService(t->service_id());
          if (!svc || svc->spec_version().index() != t->spec_version().index()) continue;
        }
        *resp->add_tasks() = Redacted(*t);
      }
    });
    return absl::OkStatus();
  });
}

grpc::Status Server::RemoveTask(grpc::ServerContext* ctx, const api::RemoveTaskRequest* req,
                                api::RemoveTaskResponse*) {
  return Serve(ctx, Access::kConcurrentWrite, [&]() -> absl::Status {
    return store_->Update([&](store::WriteTx& tx) -> absl::Status {
      ASSIGN_OR_RETURN(const std::string id, Resolve(tx, api::StoreAction::kTask, req->task_id()));
      tx.RemoveObject(*tx.GetTask(id));
      return absl::OkStatus();
    });
  });
}

// ---- services ----

grpc::Status Server::GetService(grpc::ServerContext* ctx, const api::GetServiceRequest* req,
                                api::GetServiceResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    absl::Status s;
    store_->View([&](const store::ReadTx& tx) {
      auto id = Resolve(tx, api::StoreAction::kService, req->service_id());
      if (!id.ok()) {
        s = id.status();
        return;
      }
      api::Service svc = Redacted(*tx.GetService(*id));
      if (req->insert_defaults()) orchestrator::InsertServiceDefaults(svc.mutable_spec());
      *resp->mutable_service() = std::move(svc);
    });
    return s;
  });
}

grpc::Status Server::ListServices(grpc::ServerContext* ctx, const api::ListServicesRequest* req,
                                  api::ListServicesResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    const auto& f = req->filters();
    store_->View([&](const store::ReadTx& tx) {
      for (const auto& s : tx.ListServices()) {
        const char* runtime =
            s->spec().task_template().has_attachment() ? "attachment" : "container";
        if (CommonFiltersMatch(f, *s) && AnyOf(f.runtimes(), runtime) &&
            AnyEnum(f.modes(), ModeOf(s->spec()))) {
          *resp->add_services() = Redacted(*s);
        }
      }
    });
    return absl::OkStatus();
  });
}

grpc::Status Server::CreateService(grpc::ServerContext* ctx, const api::CreateServiceRequest* req,
                                   api::CreateServiceResponse* resp) {
  return Serve(ctx, Access::kWrite, [&] { return DoCreateService(*req, resp); });
}

absl::Status Server::DoCreateService(const api::CreateServiceRequest& req,
                                     api::CreateServiceResponse* resp) {
  if (!req.has_spec()) return absl::InvalidArgumentError("a service spec is required");
  api::Service svc;
  *svc.mutable_spec() = req.spec();
  // Docker names a service created without --name itself ("eager-hopper").
  const bool named = !req.spec().annotations().name().empty();
  auto pick_name = [&] {
    svc.mutable_spec()->mutable_annotations()->set_name(
        WithRandom<std::string>([](Random& r) { return RandomServiceName(r); }));
  };
  if (!named) pick_name();
  RETURN_IF_ERROR(ValidateServiceSpec(svc.spec()));
  svc.set_id(NewObjectId());
  svc.mutable_spec_version()->set_index(1);
  if (IsJob(svc.spec())) {
    svc.mutable_job_status()->mutable_job_iteration()->set_index(0);
    *svc.mutable_job_status()->mutable_last_execution() = ToTimestamp(options_.clock->Now());
  }
  RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
    for (int i = 0; !named && i < 10 &&
                    tx.IdByName(api::StoreAction::kService, svc.spec().annotations().name());
         ++i) {
      pick_name();
    }
    RETURN_IF_ERROR(
        CheckNameFree(tx, api::StoreAction::kService, svc.spec().annotations().name(), ""));
    RETURN_IF_ERROR(ResolveReferences(tx, svc.mutable_spec()));
    RETURN_IF_ERROR(CheckPortConflicts(tx, svc.spec(), svc.id()));
    tx.CreateObject(svc);
    return absl::OkStatus();
  }));
  *resp->mutable_service() = Redacted(Reread(store_, &store::ReadTx::GetService, svc));
  return absl::OkStatus();
}

grpc::Status Server::UpdateService(grpc::ServerContext* ctx, const api::UpdateServiceRequest* req,
                                   api::UpdateServiceResponse* resp) {
  return Serve(ctx, Access::kWrite, [&] { return DoUpdateService(*req, resp); });
}

absl::Status Server::DoUpdateService(const api::UpdateServiceRequest& req,
                                     api::UpdateServiceResponse* resp) {
  RETURN_IF_ERROR(RequireVersion(req.has_service_version(), "service_version"));
  const bool new_spec = !req.rollback() && req.has_spec();
  if (!req.rollback() && !req.has_spec() && !req.rebalance()) {
    return absl::InvalidArgumentError(
        "the service's new spec is required (or rollback, or rebalance)");
  }
  if (new_spec) RETURN_IF_ERROR(ValidateServiceSpec(req.spec()));
  const absl::Time now = options_.clock->Now();
  api::Service svc;
  RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const std::string id,
                     Resolve(tx, api::StoreAction::kService, req.service_id()));
    svc = *tx.GetService(id);
    const std::string what = absl::StrCat("service ", svc.spec().annotations().name());
    RETURN_IF_ERROR(CheckVersion(req.service_version(), svc.meta(), what));

    api::ServiceSpec next;
    if (req.rollback()) {
      if (!svc.has_previous_spec()) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, " has no previous spec to roll back to: it was never updated"));
      }
      next = svc.previous_spec();
    } else if (!new_spec) {
      next = svc.spec();
    } else {
      next = req.spec();
      if (next.annotations().name() != svc.spec().annotations().name()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "renaming services is not supported (", Quote(svc.spec().annotations().name()), " to ",
            Quote(next.annotations().name()), "); create a new service instead"));
      }
      if (next.mode_case() != svc.spec().mode_case()) {
        return absl::InvalidArgumentError(
            "service mode change is not allowed: remove the service and create it again with "
            "the new mode");
      }
      KeepRegistryAuth(svc.spec(), &next);
    }
    RETURN_IF_ERROR(ResolveReferences(tx, &next));
    if (req.rollback() ||
        !MessageDifferencer::Equals(next.endpoint_spec(), svc.spec().endpoint_spec())) {
      RETURN_IF_ERROR(CheckPortConflicts(tx, next, svc.id()));
    }

    bool changed = false;
    if (req.rollback()) {
      // Always a swap, as in SwarmKit: a second rollback undoes the first.
      changed = true;
      std::swap(*svc.mutable_spec_version(), *svc.mutable_previous_spec_version());
      *svc.mutable_previous_spec() = svc.spec();
      *svc.mutable_spec() = next;  // the previous spec, references re-resolved
      api::UpdateStatus* u = svc.mutable_update_status();
      u->Clear();
      u->set_state(api::UPDATE_STATE_ROLLBACK_STARTED);
      u->set_message("manually requested rollback");
      *u->mutable_started_at() = ToTimestamp(now);
    } else if (!MessageDifferencer::Equals(next, svc.spec())) {
      changed = true;
      const uint64_t version =
          std::max(svc.spec_version().index(), svc.previous_spec_version().index()) + 1;
      *svc.mutable_previous_spec() = svc.spec();
      *svc.mutable_previous_spec_version() = svc.spec_version();
      *svc.mutable_spec() = next;
      svc.mutable_spec_version()->set_index(version);
      svc.clear_update_status();
    }
    if (req.rebalance()) {
      if (!svc.spec().has_replicated()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what,
                         " is not a replicated service: only replicated services can be rebalanced "
                         "(a global service already runs one task on every eligible node)"));
      }
      svc.set_rebalance(true);
    }
    if (changed && IsJob(svc.spec())) {
      api::JobStatus* job = svc.mutable_job_status();
      job->mutable_job_iteration()->set_index(job->job_iteration().index() + 1);
      *job->mutable_last_execution() = ToTimestamp(now);
    }
    tx.UpdateObject(svc);
    return absl::OkStatus();
  }));
  *resp->mutable_service() = Redacted(Reread(store_, &store::ReadTx::GetService, svc));
  return absl::OkStatus();
}

grpc::Status Server::RemoveService(grpc::ServerContext* ctx, const api::RemoveServiceRequest* req,
                                   api::RemoveServiceResponse*) {
  return Serve(ctx, Access::kConcurrentWrite, [&]() -> absl::Status {
    return store_->Update([&](store::WriteTx& tx) -> absl::Status {
      ASSIGN_OR_RETURN(const std::string id,
                       Resolve(tx, api::StoreAction::kService, req->service_id()));
      tx.RemoveObject(*tx.GetService(id));
      return absl::OkStatus();
    });
  });
}

grpc::Status Server::ListServiceStatuses(grpc::ServerContext* ctx,
                                         const api::ListServiceStatusesRequest* req,
                                         api::ListServiceStatusesResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    store_->View([&](const store::ReadTx& tx) {
      std::vector<store::Ptr<api::Service>> services;
      if (req->service_ids().empty()) {
        services = tx.ListServices();
      } else {
        for (const std::string& id : req->service_ids()) {
          if (auto s = tx.GetService(id)) services.push_back(s);
        }
      }
      for (const auto& svc : services) {
        api::ServiceStatus* st = resp->add_statuses();
        st->set_service_id(svc->id());
        const api::ServiceSpec& spec = svc->spec();
        if (spec.has_replicated()) st->set_desired_tasks(spec.replicated().replicas());
        if (spec.has_replicated_job()) {
          const auto& job = spec.replicated_job();
          st->set_desired_tasks(job.max_concurrent() != 0
                                    ? std::min(job.max_concurrent(), job.total_completions())
                                    : job.total_completions());
        }
        const uint64_t iteration = svc->job_status().job_iteration().index();
        for (const auto& t : tx.TasksByService(svc->id())) {
          const bool current_job = IsJob(spec) && t->job_iteration().index() == iteration;
          if (spec.has_global() && t->desired_state() == api::TASK_STATE_RUNNING) {
            st->set_desired_tasks(st->desired_tasks() + 1);
          }
          if (spec.has_global_job() && current_job &&
              t->desired_state() == api::TASK_STATE_COMPLETE) {
            st->set_desired_tasks(st->desired_tasks() + 1);
          }
          if (t->status().state() == api::TASK_STATE_RUNNING) {
            st->set_running_tasks(st->running_tasks() + 1);
          }
          if (current_job && t->status().state() == api::TASK_STATE_COMPLETE) {
            st->set_completed_tasks(st->completed_tasks() + 1);
          }
        }
      }
    });
    return absl::OkStatus();
  });
}

// ---- networks ----

grpc::Status Server::GetNetwork(grpc::ServerContext* ctx, const api::GetNetworkRequest* req,
                                api::GetNetworkResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    absl::Status s;
    store_->View([&](const store::ReadTx& tx) {
      absl::StatusOr<std::string> id =
          absl::InvalidArgumentError("a network name or ID is required");
      if (!req->network_id().empty()) {
        id = Resolve(tx, api::StoreAction::kNetwork, req->network_id());
      } else if (!req->name().empty()) {
        if (auto named = tx.IdByName(api::StoreAction::kNetwork, req->name())) {
          id = *named;
        } else {
          id = absl::NotFoundError(absl::StrCat("network ", req->name(), " not found"));
        }
      }
      if (!id.ok()) {
        s = id.status();
        return;
      }
      *resp->mutable_network() = *tx.GetNetwork(*id);
    });
    return s;
  });
}

grpc::Status Server::ListNetworks(grpc::ServerContext* ctx, const api::ListNetworksRequest* req,
                                  api::ListNetworksResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    store_->View([&](const store::ReadTx& tx) {
      for (const auto& n : tx.ListNetworks()) {
        if (CommonFiltersMatch(req->filters(), *n)) *resp->add_networks() = *n;
      }
    });
    return absl::OkStatus();
  });
}

grpc::Status Server::CreateNetwork(grpc::ServerContext* ctx, const api::CreateNetworkRequest* req,
                                   api::CreateNetworkResponse* resp) {
  return Serve(ctx, Access::kWrite, [&]() -> absl::Status {
    if (!req->has_spec()) return absl::InvalidArgumentError("a network spec is required");
    RETURN_IF_ERROR(ValidateNetworkSpec(req->spec()));
    api::Network net;
    net.set_id(NewObjectId());
    *net.mutable_spec() = req->spec();
    RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
      auto networks = tx.ListNetworks();
      RETURN_IF_ERROR(
          CheckNameFree(tx, api::StoreAction::kNetwork, net.spec().annotations().name(), ""));
      RETURN_IF_ERROR(CheckSubnetFree(tx, net.spec()));
      if (net.spec().ingress()) {
        for (const auto& n : networks) {
          if (n->spec().ingress()) {
            return absl::AlreadyExistsError(absl::StrCat(
                "an ingress network already exists (", Quote(n->spec().annotations().name()), ", ",
                n->id(), "); remove it first to create another"));
          }
        }
      }
      if (!net.spec().config_from().empty()) {
        auto from = Resolve(tx, api::StoreAction::kNetwork, net.spec().config_from());
        if (!from.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "network ", Quote(net.spec().config_from()), " (--config-from) not found"));
        }
      }
      tx.CreateObject(net);
      return absl::OkStatus();
    }));
    *resp->mutable_network() = Reread(store_, &store::ReadTx::GetNetwork, net);
    return absl::OkStatus();
  });
}

grpc::Status Server::UpdateNetwork(grpc::ServerContext* ctx, const api::UpdateNetworkRequest* req,
                                   api::UpdateNetworkResponse* resp) {
  return Serve(ctx, Access::kConcurrentWrite, [&]() -> absl::Status {
    RETURN_IF_ERROR(RequireVersion(req->has_network_version(), "network_version"));
    if (!req->has_spec()) return absl::InvalidArgumentError("the network's new spec is required");
    RETURN_IF_ERROR(ValidateLabels(req->spec().annotations().labels(), "network label"));
    api::Network net;
    RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
      ASSIGN_OR_RETURN(const std::string id,
                       Resolve(tx, api::StoreAction::kNetwork, req->network_id()));
      net = *tx.GetNetwork(id);
      RETURN_IF_ERROR(CheckVersion(req->network_version(), net.meta(),
                                   "network " + net.spec().annotations().name()));
      api::NetworkSpec want = req->spec();
      api::NetworkSpec have = net.spec();
      want.mutable_annotations()->clear_labels();
      have.mutable_annotations()->clear_labels();
      if (!MessageDifferencer::Equals(want, have)) {
        std::string field;
        MessageDifferencer d;
        d.ReportDifferencesToString(&field);
        d.Compare(have, want);
        return absl::InvalidArgumentError(absl::StrCat(
            "only a network's labels can be changed; create a new network for other changes (",
            absl::StripAsciiWhitespace(field), ")"));
      }
      *net.mutable_spec()->mutable_annotations()->mutable_labels() =
          req->spec().annotations().labels();
      tx.UpdateObject(net);
      return absl::OkStatus();
    }));
    *resp->mutable_network() = Reread(store_, &store::ReadTx::GetNetwork, net);
    return absl::OkStatus();
  });
}

grpc::Status Server::RemoveNetwork(grpc::ServerContext* ctx, const api::RemoveNetworkRequest* req,
                                   api::RemoveNetworkResponse*) {
  return Serve(ctx, Access::kWrite, [&]() -> absl::Status {
    return store_->Update([&](store::WriteTx& tx) -> absl::Status {
      ASSIGN_OR_RETURN(const std::string id,
                       Resolve(tx, api::StoreAction::kNetwork, req->network_id()));
      store::Ptr<api::Network> net = tx.GetNetwork(id);
      const std::string& name = net->spec().annotations().name();
      if (net->spec().ingress()) {
        std::vector<std::string> users = ServicesUsing(
            tx, [](const api::Service& s) { return PublishesIngressPorts(s.spec()); });
        if (!users.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "ingress network ", Quote(name),
              " cannot be removed because these services publish ports in ingress mode: ",
              absl::StrJoin(users, ", "), "; remove those ports or services first"));
        }
      }
      std::vector<std::string> users = ServicesUsing(tx, [&](const api::Service& s) {
        for (const auto& n : s.spec().task_template().networks()) {
          if (n.target() == id) return true;
        }
        return false;
      });
      if (!users.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "network ", Quote(name), " is in use by service", users.size() == 1 ? " " : "s ",
            absl::StrJoin(users, ", "),
            "; detach it (swarmctl service update --network-rm) or remove the service first"));
      }
      for (const auto& t : tx.ListTasks()) {
        if (t->desired_state() > api::TASK_STATE_RUNNING ||
            t->status().state() > api::TASK_STATE_RUNNING) {
          continue;
        }
        for (const auto& a : t->networks()) {
          if (a.network().id() == id) {
            return absl::FailedPreconditionError(
                absl::StrCat("network ", Quote(name), " is in use by task ", t->id(),
                             "; wait for it to stop, then try again"));
          }
        }
      }
      tx.RemoveObject(*net);
      return absl::OkStatus();
    });
  });
}

// ---- cluster ----

grpc::Status Server::GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest* req,
                                api::GetClusterResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    absl::Status s;
    store_->View([&](const store::ReadTx& tx) {
      auto id = Resolve(tx, api::StoreAction::kCluster, req->cluster_id());
      if (!id.ok()) {
        s = id.status();
        return;
      }
      *resp->mutable_cluster() = Redacted(*tx.GetCluster(*id));
    });
    return s;
  });
}

grpc::Status Server::ListClusters(grpc::ServerContext* ctx, const api::ListClustersRequest* req,
                                  api::ListClustersResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    store_->View([&](const store::ReadTx& tx) {
      for (const auto& c : tx.ListClusters()) {
        if (CommonFiltersMatch(req->filters(), *c)) *resp->add_clusters() = Redacted(*c);
      }
    });
    return absl::OkStatus();
  });
}

grpc::Status Server::UpdateCluster(grpc::ServerContext* ctx, const api::UpdateClusterRequest* req,
                                   api::UpdateClusterResponse* resp) {
  return Serve(ctx, Access::kWrite, [&] { return DoUpdateCluster(*req, resp); });
}

absl::Status Server::DoUpdateCluster(const api::UpdateClusterRequest& req,
                                     api::UpdateClusterResponse* resp) {
  RETURN_IF_ERROR(RequireVersion(req.has_cluster_version(), "cluster_version"));
  if (!req.has_spec()) return absl::InvalidArgumentError("the cluster's new spec is required");
  RETURN_IF_ERROR(ValidateClusterSpec(req.spec()));
  const absl::Time now = options_.clock->Now();
  api::Cluster c;
  RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const std::string id,
                     Resolve(tx, api::StoreAction::kCluster, req.cluster_id()));
    c = *tx.GetCluster(id);
    RETURN_IF_ERROR(CheckVersion(req.cluster_version(), c.meta(), "the cluster"));
    if (req.spec().annotations().name() != c.spec().annotations().name()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the cluster's name (", Quote(c.spec().annotations().name()), ") cannot be changed"));
    }
    // Get never returns the signing CA key: a spec sent back with the same certificate and
    // no key keeps the stored key.
    const std::string stored_key = c.spec().ca_config().signing_ca_key();
    const bool same_cert =
        req.spec().ca_config().signing_ca_cert() == c.spec().ca_config().signing_ca_cert();
    *c.mutable_spec() = req.spec();
    if (same_cert && c.spec().ca_config().signing_ca_key().empty()) {
      c.mutable_spec()->mutable_ca_config()->set_signing_ca_key(stored_key);
    }
    // `swarm ca --rotate` (force_rotate grew) or a new signing root: a root CA rotation.
    RETURN_IF_ERROR(WithRandom<absl::Status>(
        [&](Random& r) { return ca::MaybeStartRootRotation(&c, now, r); }));

    const api::KeyRotation& rotation = req.rotation();
    if (rotation.worker_join_token() || rotation.manager_join_token()) {
      auto root = ca::RootCA::Load(c.root_ca().ca_cert(), "");
      if (!root.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot rotate join tokens: the cluster's root CA is unusable: ",
                         root.status().message()));
      }
      api::JoinTokens* tokens = c.mutable_root_ca()->mutable_join_tokens();
      if (rotation.worker_join_token()) {
        tokens->set_worker(
            WithRandom<std::string>([&](Random& r) { return ca::GenerateJoinToken(*root, r); }));
      }
      if (rotation.manager_join_token()) {
        tokens->set_manager(
            WithRandom<std::string>([&](Random& r) { return ca::GenerateJoinToken(*root, r); }));
      }
    }

    const bool autolock = c.spec().encryption_config().auto_lock_managers();
    if (rotation.manager_unlock_key() && !autolock) {
      return absl::FailedPreconditionError(
          "cannot rotate the unlock key: autolock is off; turn it on with swarmctl swarm update "
          "--autolock=true, which creates a key");
    }
    if (!autolock) {
      c.clear_unlock_keys();
    } else if (UnlockKeyOf(c).empty() || rotation.manager_unlock_key()) {
      uint64_t lamport = 0;
      for (const auto& k : c.unlock_keys()) lamport = std::max(lamport, k.lamport_time());
      c.clear_unlock_keys();
      api::EncryptionKey* key = c.add_unlock_keys();
      key->set_subsystem(kUnlockKeySubsystem);
      key->set_algorithm(api::ENCRYPTION_ALGORITHM_AES_256_GCM);
      key->set_key(WithRandom<std::string>([](Random& r) { return ca::GenerateUnlockKey(r); }));
      key->set_lamport_time(lamport + 1);
    }
    ExpireBlacklist(&c, now);
    tx.UpdateObject(c);
    return absl::OkStatus();
  }));
  *resp->mutable_cluster() = Redacted(Reread(store_, &store::ReadTx::GetCluster, c));
  return absl::OkStatus();
}

// ---- secrets and configs ----

grpc::Status Server::GetSecret(grpc::ServerContext* ctx, const api::GetSecretRequest* req,
                               api::GetSecretResponse* resp) {
  return Serve(ctx, Access::kRead,
               [&] { return GetBlob(store_, req->secret_id(), resp->mutable_secret()); });
}

grpc::Status Server::ListSecrets(grpc::ServerContext* ctx, const api::ListSecretsRequest* req,
                                 api::ListSecretsResponse* resp) {
  return Serve(ctx, Access::kRead, [&] {
    ListBlobs(store_, req->filters(), resp->mutable_secrets());
    return absl::OkStatus();
  });
}

grpc::Status Server::CreateSecret(grpc::ServerContext* ctx, const api::CreateSecretRequest* req,
                                  api::CreateSecretResponse* resp) {
  return Serve(ctx, Access::kConcurrentWrite, [&] {
    return CreateBlob(
        store_, req->has_spec() ? &req->spec() : nullptr, [this] { return NewObjectId(); },
        resp->mutable_secret());
  });
}

grpc::Status Server::UpdateSecret(grpc::ServerContext* ctx, const api::UpdateSecretRequest* req,
                                  api::UpdateSecretResponse* resp) {
  return Serve(ctx, Access::kConcurrentWrite, [&] {
    return UpdateBlob(store_, req->secret_id(),
                      req->has_secret_version() ? &req->secret_version() : nullptr,
                      req->has_spec() ? &req->spec() : nullptr, resp->mutable_secret());
  });
}

grpc::Status Server::RemoveSecret(grpc::ServerContext* ctx, const api::RemoveSecretRequest* req,
                                  api::RemoveSecretResponse*) {
  return Serve(ctx, Access::kWrite,
               [&] { return RemoveBlob<api::Secret>(store_, req->secret_id()); });
}

grpc::Status Server::GetConfig(grpc::ServerContext* ctx, const api::GetConfigRequest* req,
                               api::GetConfigResponse* resp) {
  return Serve(ctx, Access::kRead,
               [&] { return GetBlob(store_, req->config_id(), resp->mutable_config()); });
}

grpc::Status Server::ListConfigs(grpc::ServerContext* ctx, const api::ListConfigsRequest* req,
                                 api::ListConfigsResponse* resp) {
  return Serve(ctx, Access::kRead, [&] {
    ListBlobs(store_, req->filters(), resp->mutable_configs());
    return absl::OkStatus();
  });
}

grpc::Status Server::CreateConfig(grpc::ServerContext* ctx, const api::CreateConfigRequest* req,
                                  api::CreateConfigResponse* resp) {
  return Serve(ctx, Access::kConcurrentWrite, [&] {
    return CreateBlob(
        store_, req->has_spec() ? &req->spec() : nullptr, [this] { return NewObjectId(); },
        resp->mutable_config());
  });
}

grpc::Status Server::UpdateConfig(grpc::ServerContext* ctx, const api::UpdateConfigRequest* req,
                                  api::UpdateConfigResponse* resp) {
  return Serve(ctx, Access::kConcurrentWrite, [&] {
    return UpdateBlob(store_, req->config_id(),
                      req->has_config_version() ? &req->config_version() : nullptr,
                      req->has_spec() ? &req->spec() : nullptr, resp->mutable_config());
  });
}

grpc::Status Server::RemoveConfig(grpc::ServerContext* ctx, const api::RemoveConfigRequest* req,
                                  api::RemoveConfigResponse*) {
  return Serve(ctx, Access::kWrite,
               [&] { return RemoveBlob<api::Config>(store_, req->config_id()); });
}

// ---- unlock key ----

grpc::Status Server::GetUnlockKey(grpc::ServerContext* ctx, const api::GetUnlockKeyRequest*,
                                  api::GetUnlockKeyResponse* resp) {
  return Serve(ctx, Access::kRead, [&]() -> absl::Status {
    if (!options_.unlock_key) {
      return absl::UnimplementedError(
          "this manager cannot report the unlock key (it runs without a key manager)");
    }
    ASSIGN_OR_RETURN(const std::string key, options_.unlock_key());
    resp->set_unlock_key(key);
    store_->View([&](const store::ReadTx& tx) {
      auto clusters = tx.ListClusters();
      if (!clusters.empty()) *resp->mutable_version() = clusters.front()->meta().version();
    });
    return absl::OkStatus();
  });
}

}  // namespace swarm::manager::controlapi
