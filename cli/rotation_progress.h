// The progress `swarm ca --rotate` shows until a root CA rotation is over, as Docker's does:
//
//   desired root digest: sha256:05da740cf2577a25224c53019e2cce99bcc5ba09664ad6bb2a9425d9ebd1b53e
//     rotated TLS certificates:  [=========================>                         ] 1/2 nodes
//     rotated CA certificates:   [>                                                  ] 0/2 nodes
//
// "TLS certificates" counts the nodes whose certificate the new root signed; "CA
// certificates" the nodes that trust the new root (both roots while the rotation runs, the new
// one alone after). The rotation is over when the managers have retired the old root and
// every node is on the new one. Evaluate is pure (one poll's cluster and nodes in, the view
// out); the command polls and prints it.
//
// Thread-safety: none needed; one command runs on one thread.
#ifndef SWARM_CLI_ROTATION_PROGRESS_H_
#define SWARM_CLI_ROTATION_PROGRESS_H_

#include <string>
#include <vector>

#include "proto/objects.pb.h"

namespace swarm::cli {

struct RotationView {
  std::string desired_digest;  // "sha256:<hex>" of the root the swarm moves to
  int total = 0;
  int certs_rotated = 0;
  int trust_rotated = 0;
  bool running = false;  // the old root is not retired yet
  bool done = false;
  // The nodes still on the old root: "HOSTNAME (ID, STATE)".
  std::vector<std::string> waiting_for;
};

RotationView EvaluateRootRotation(const api::Cluster& cluster, const std::vector<api::Node>& nodes);
// The three lines above, each ending in a newline.
std::string RenderRootRotation(const RotationView& view);

}  // namespace swarm::cli

#endif  // SWARM_CLI_ROTATION_PROGRESS_H_
