# The boards and devices partlink's guests use, and nothing else: QEMU is
# configured --without-default-devices --with-devices-x86_64=partlink, which
# halves its build time.  scripts/build-qemu.sh links this file into QEMU's
# configs/devices/x86_64-softmmu/ as partlink.mak.
CONFIG_I440FX=y
CONFIG_Q35=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_NET=y
CONFIG_VIRTIO_BALLOON=y
CONFIG_ISA_DEBUG=y
CONFIG_PARTLINK_PCI=y
# Host directories shared into a guest (-virtfs ..., virtio-9p-pci); also
# needs configure --enable-virtfs, which scripts/build-qemu.sh passes.
CONFIG_VIRTIO_9P=y
