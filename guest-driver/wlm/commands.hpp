// The three things plwlm does, with their I/O: the monitor's sampling loop,
// the manager's event loop, and a single hand-made request. main.cpp only
// turns the command line into these options.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hv_client.hpp"

namespace plwlm {

struct MonitorOptions {
    std::string to;        // HOST:PORT of the manager
    double interval = 1.0; // seconds
    std::string partition; // empty: this host's name
    std::string iface;     // empty: every interface but lo
    long count = 0;        // stop after this many reports; 0: run until signalled
    bool verbose = false;  // print every report sent
    std::string proc = "/proc";
};

struct ManagerOptions {
    std::string listen; // [ADDR:]PORT
    double interval = 1.0;
    bool dry_run = false;
    std::string log_file; // JSON lines, appended
    double duration = 0;  // stop after this many seconds; 0: run until signalled
    std::string device = std::string(kDevicePath);
    double step = 0.25;
    int settle = 3;
    double dead_band = 0.05;
    double min_cpu = 0.1;
    double max_cpu = kMaxDirectiveCpus;
    double default_cap = 1.0;
    std::vector<std::string> caps; // NAME=CPUS
};

struct RequestOptions {
    std::string partition;
    // Exactly one of cpu (SET_CPU) and memory (SET_MEMORY).
    std::optional<double> cpu;
    std::optional<std::int64_t> memory; // MiB
    std::optional<std::string> donor;   // with cpu only
    bool no_check = false;              // send a cap plwlm would refuse
    std::string raw_file;               // send these 128 bytes instead
    bool dry_run = false;
    std::string device = std::string(kDevicePath);
};

int run_monitor(const MonitorOptions& options);
int run_manager(const ManagerOptions& options);
int run_request(const RequestOptions& options);

} // namespace plwlm
