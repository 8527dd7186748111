# One command runs every check from a fresh Debian 12 machine, as root: `make test`.
# It installs what it needs (a venv, Debian's docker.io, the local base images) and reuses them
# on the next run; `make clean` forgets them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
# The ansible-core 2.16 lane's tools (the seed's Ubuntu 18.04: Python 3.6 targets).
VENV_216  ?= .venv-2.16
PYTHON    ?= python3
STEP      := tests/harness/step.sh
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The container lanes run on a Docker engine on cgroup v2, as users' hosts do: one that already
# answers on v2, else the lab's own beside the machine's (tests/harness/docker-engine.sh says how).
export DOCKER_HOST := $(shell tests/harness/docker-engine.sh --host)

# Role scenarios first, then the whole lab (`default`) on Debian 13 (the Docker-provider test runs
# the same lab and suite on Debian 12); then the seed's VM as near as a container comes (`bionic`),
# under the 2.16 lane. `make test SCENARIOS="... default"` runs `default` on Debian 12 as well.
SCENARIOS ?= postgresql datadog flask_app
SCENARIOS_216 ?= bionic
SECOND_IMAGE ?= datadog-lab/debian:13
# And the real `vagrant up` on a libvirt VM (tests/vm/run.sh), in the background beside the
# scenarios (tests/harness/test.sh); VM_TEST=0 leaves it out. Then `vagrant up --provider=docker`
# (tests/docker-provider/run.sh); DOCKER_PROVIDER_TEST=0 leaves it out. And the same test on an arm64
# lab host under emulation (LAB_TEST_ARCH=arm64), in the background before the VM test; ARM64_TEST=0
# leaves it out (and setup then builds no arm64 image).
VM_TEST ?= 1
DOCKER_PROVIDER_TEST ?= 1
ARM64_TEST ?= 1

.PHONY: help test setup venv venv-2.16 engine images images-arm64 host-tools standin bionic-inputs lint vagrant-validate lint-2.16 unit clean test-vm test-docker-provider test-docker-provider-arm64

help:  ## list the targets
	@grep -E '^[a-z0-9.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

test: ## everything CI runs: setup, lint, vagrant validate, unit tests, every Molecule scenario, the VM test, the Docker-provider test (amd64, arm64)
	@$(STEP) setup $(MAKE) --no-print-directory setup
	@$(STEP) standin $(MAKE) --no-print-directory standin
	@$(if $(SCENARIOS_216),$(STEP) bionic-inputs $(MAKE) --no-print-directory bionic-inputs)
	@SCENARIOS="$(SCENARIOS)" SCENARIOS_216="$(SCENARIOS_216)" SECOND_IMAGE="$(SECOND_IMAGE)" \
	  VM_TEST="$(VM_TEST)" DOCKER_PROVIDER_TEST="$(DOCKER_PROVIDER_TEST)" ARM64_TEST="$(ARM64_TEST)" \
	  VENV_216="$(VENV_216)" tests/harness/test.sh

setup: venv venv-2.16 engine images $(if $(filter 1,$(ARM64_TEST)),images-arm64) host-tools ## the venvs, a running Docker engine, the base images (amd64; arm64 unless ARM64_TEST=0), the VM tools

venv: $(VENV)/.installed ## the tools' venv, from the pinned requirements
$(VENV)/.installed: requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q -r requirements-dev.txt 2>&1 | { grep -v 'is ignored: it is neither' >&2 || :; }; test $${PIPESTATUS[0]} -eq 0
	@touch $@

venv-2.16: $(VENV_216)/.installed ## the 2.16 lane's tools venv (Python 3.10-3.12), from requirements-dev-2.16.txt
$(VENV_216)/.installed: requirements-dev-2.16.txt
	@test -x $(VENV_216)/bin/python || $(PYTHON) -m venv $(VENV_216)
	@$(VENV_216)/bin/pip install -q -r requirements-dev-2.16.txt 2>&1 | { grep -v 'is ignored: it is neither' >&2 || :; }; test $${PIPESTATUS[0]} -eq 0
	@touch $@

engine: ## a Docker engine on cgroup v2: the one that answers, else the lab's own (Debian's docker.io)
	@tests/harness/docker-engine.sh

images: engine ## the local systemd base images (Debian 12 and 13), built with debootstrap
	@tests/harness/base-images.sh bookworm trixie

images-arm64: engine ## arm64 under emulation (qemu-user-static in binfmt_misc) and the arm64 Debian 12 base image
	@tests/harness/arm64-emulation.sh
	@tests/harness/base-images.sh bookworm/arm64

host-tools: ## Debian's vagrant, libvirt and QEMU for `vagrant validate` and the VM test
	@tests/vm/host-setup.sh

standin: venv ## the agent stand-in: .debs in a signed local apt repository (.build/standin-apt)
	@tests/doubles/agent_standin/build.sh

bionic-inputs: ## the bionic scenario's Python 3.6 and 3.8 (from pyenv builds) and its PostgreSQL 10 apt repository
	@tests/harness/pythons.sh
	@tests/harness/pg10/build.sh

lint: venv ## yamllint, ansible-lint (production profile, offline), the playbooks' syntax check; installs no host package
	yamllint --strict .
	ansible-lint --offline --profile production
	ansible-playbook --syntax-check site.yml playbooks/*.yml

vagrant-validate: ## vagrant validate of the Vagrantfile (libvirt and docker providers), with the vagrant that `make host-tools` installs
	@command -v vagrant >/dev/null || { echo "vagrant-validate: no vagrant (run make host-tools)" >&2; exit 1; }
	for provider in libvirt docker; do \
	  VAGRANT_HOME=$(CURDIR)/.build/vagrant.d VAGRANT_DOTFILE_PATH=$(CURDIR)/.build/dot-vagrant-validate \
	    VAGRANT_DEFAULT_PROVIDER=$$provider VAGRANT_CHECKPOINT_DISABLE=1 LAB_ENV_FILE=none vagrant validate; \
	done

lint-2.16: venv-2.16 ## ansible-lint and the playbooks' syntax check under the ansible-core 2.16 lane
	PATH=$(CURDIR)/$(VENV_216)/bin:$$PATH ansible-lint --offline --profile production
	PATH=$(CURDIR)/$(VENV_216)/bin:$$PATH ansible-playbook --syntax-check site.yml playbooks/*.yml

test-vm: venv ## the lab on a real VM: vagrant up (libvirt, QEMU), testinfra, provision, reload, destroy
	tests/vm/run.sh

test-docker-provider: venv ## the lab in Vagrant's Docker provider: vagrant up --provider=docker, testinfra, traffic, verify, provision, destroy
	tests/docker-provider/run.sh

test-docker-provider-arm64: venv ## the same on an arm64 lab host, under emulation (make images-arm64 standin first)
	LAB_TEST_ARCH=arm64 tests/docker-provider/run.sh

unit: venv ## the unit tests (pytest)
	pytest -q tests/unit

clean: ## forget the venv, the base images and the build folder
	rm -rf $(VENV) $(VENV_216) .build
	-docker image rm datadog-lab/debian:12 datadog-lab/debian:13 datadog-lab/debian:12-arm64 2>/dev/null
