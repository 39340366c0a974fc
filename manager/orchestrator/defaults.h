// The values the orchestrators use for what a service spec leaves unset: restart policy (any
// exit, after 5 s), update and rollback configs (one task at a time, monitored for 5 s,
// pause on failure; jobs have none), stop grace period (10 s). Specs are stored as users send
// them; the orchestrators apply these when they act, and `service inspect` shows them.
//
// Thread-safety: pure function.
#ifndef SWARM_MANAGER_ORCHESTRATOR_DEFAULTS_H_
#define SWARM_MANAGER_ORCHESTRATOR_DEFAULTS_H_

#include "proto/specs.pb.h"

namespace swarm::manager::orchestrator {

// Fills the unset fields above, leaving set ones alone.
void InsertServiceDefaults(api::ServiceSpec* spec);

}  // namespace swarm::manager::orchestrator

#endif  // SWARM_MANAGER_ORCHESTRATOR_DEFAULTS_H_
