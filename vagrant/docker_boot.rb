# frozen_string_literal: true

require "json"
require "open3"
require "time"

# The Docker provider's two early checks, in plain Ruby (the Vagrantfile raises Vagrant's errors with
# their answers; tests/unit/test_vagrantfile_env.py calls them with plain ruby and a stand-in docker):
# - Vagrant before 2.4.2 can't read the image id from a build on Docker's containerd image store (the
#   default of Docker Desktop since 4.34; hashicorp/vagrant issue 13342);
# - systemd in the container must reach `running` soon after the start. When it can't (a read-only
#   cgroup mount, an old systemd on a host it can't handle, a base without systemd), the container
#   either stops at once or stays up with nothing listening, and Vagrant would retry SSH until its
#   boot timeout ("Remote connection disconnect. Retrying..."): the watch says why, and when.
module LabDockerBoot
  # The first Vagrant whose Docker provider reads the containerd store's build output.
  CONTAINERD_STORE_VAGRANT = "2.4.2"
  # How long systemd may take to reach `running` (a few seconds natively, about 5 under emulation).
  BOOT_SECONDS = 90

  # Whether the engine that DOCKER_HOST (or the default socket) names keeps images in containerd's
  # store: `docker info` lists the driver type io.containerd.snapshotter.v1 in its DriverStatus.
  def self.containerd_store?
    out, status = Open3.capture2("docker", "info", "--format", "{{json .DriverStatus}}", err: File::NULL)
    status.success? && (JSON.parse(out) || []).any? { |pair| pair.include?("io.containerd.snapshotter.v1") }
  rescue JSON::ParserError, SystemCallError
    false
  end

  # The message for a Vagrant that is too old for that store, or nil.
  def self.vagrant_too_old(vagrant_version)
    return nil if Gem::Version.new(vagrant_version) >= Gem::Version.new(CONTAINERD_STORE_VAGRANT)
    return nil unless containerd_store?

    "Vagrant #{vagrant_version} can't use this Docker engine: it keeps images in containerd's image " \
      "store (Docker Desktop's default since 4.34), whose build output Vagrant reads only from " \
      "#{CONTAINERD_STORE_VAGRANT} on. Install Vagrant #{CONTAINERD_STORE_VAGRANT} or later " \
      "(https://developer.hashicorp.com/vagrant/install), or turn off \"Use containerd for pulling and " \
      "storing images\" in Docker Desktop's settings (General)."
  end

  # Why a container whose systemd did not reach `running` can't boot, read from its log (the
  # Vagrantfile gives it a tty, so systemd writes there), and what to do.
  def self.diagnose(log, seconds)
    cause =
      if log =~ /(Failed to create \S*init\.scope control group: Read-only file system)/
        "systemd can't write its cgroup (\"#{Regexp.last_match(1)}\"): /sys/fs/cgroup is read-only in " \
          "the container, or it has a private cgroup namespace"
      elsif log =~ /(exec: "?\S*systemd"?: no such file or directory|systemd: not found)/
        "the base has no systemd (\"#{Regexp.last_match(1)}\")"
      elsif log =~ /(Failed to mount cgroup[^\n]*|Cannot determine cgroup[^\n]*|cgroup[^\n]*not supported[^\n]*)/
        "this systemd can't run on the engine's cgroups (\"#{Regexp.last_match(1).strip}\")"
      else
        "systemd did not reach `running` within #{seconds} s; its last words: " \
          "#{log.lines.last(3).map(&:strip).reject(&:empty?).join(' | ')}"
      end
    "The lab's container can't boot: #{cause}.\n" \
      "Fix: the Vagrantfile runs it with --cgroupns=host and /sys/fs/cgroup mounted read-write, which a " \
      "cgroup v2 host (Docker Desktop 4.3 and later, current Linux) needs; keep both if you changed the " \
      "docker block. If they are in place, the base's systemd is too old for this host: set " \
      "LAB_DOCKER_BASE=debian:12 (systemd 252, or ubuntu:22.04), then `vagrant destroy -f && vagrant up`."
  end

  # Watches the container whose id Vagrant writes to ID_FILE (from its creation, or from now when it
  # exists) until systemd runs, then returns. If the container stops after the watch began, or
  # systemd still doesn't run SECONDS after it, stops it and calls on_failure(message) with the
  # diagnosis. Runs in a thread of its own, while Vagrant builds, starts and waits.
  def self.watch(id_file, seconds: BOOT_SECONDS, poll: 1, &on_failure)
    began = Time.now.utc
    Thread.new do
      id = nil
      build_limit = monotonic + 3600 # no container after an hour of building: nothing to watch
      boot_limit = nil
      loop do
        # The provider writes "preparing" there first, then the container's id.
        id ||= File.read(id_file).strip[/\A\h{12,}\z/] if File.file?(id_file)
        break if id.nil? && monotonic > build_limit

        if id
          boot_limit ||= monotonic + seconds
          break if check(id, began, monotonic > boot_limit, seconds, &on_failure)
        end
        sleep poll
      end
    end
  end

  # One look at the container: true when the watch is over (systemd runs, or a failure was reported).
  def self.check(id, began, late, seconds)
    info, = Open3.capture2("docker", "inspect", "--format", "{{.State.Status}} {{.State.FinishedAt}}", id,
                           err: File::NULL)
    state, finished = info.split
    if state == "running"
      sys, = Open3.capture2("docker", "exec", id, "systemctl", "is-system-running", err: File::NULL)
      return true if %w[running degraded].include?(sys.strip)
    end
    stopped = %w[exited dead].include?(state) && finished && Time.parse(finished) > began
    return false unless stopped || late

    log, = Open3.capture2e("docker", "logs", "--tail", "40", id)
    Open3.capture2e("docker", "kill", id) if state == "running"
    yield diagnose(log.gsub(/\e\[[0-9;?]*[A-Za-z]/, "").delete("\r"), seconds)
    true
  end

  def self.monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
