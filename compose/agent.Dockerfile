# outage-lab's image plus one external agent: the program and the shared libraries it loads, laid
# out under rootfs/ of the build context by scripts/compose-smoke --agent (no registry needed: the
# base is the local outage-lab:dev that scripts/compose-image builds).
ARG BASE=outage-lab:dev
FROM ${BASE}
COPY rootfs/ /
LABEL org.opencontainers.image.title="outage-lab-agent"
