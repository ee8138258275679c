// Network namespace, child side. A new network namespace starts with only a loopback
// interface, and that one down.
#pragma once

namespace pw {

// Brings `lo` up (needs CAP_NET_ADMIN over the namespace: call before dropping to the user).
void bring_up_loopback();

}  // namespace pw
