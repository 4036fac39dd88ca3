#!/bin/bash
# Inside the image: the kiosk's users, its virtual environment from the wheels, and the
# units enabled at boot. build.sh (mmdebstrap) and pi-gen both feed it to bash in a chroot.
set -euo pipefail

. /etc/kiosk/image.env

# Users: kiosk runs the box, kiosk-display the screens; neither can log in.
getent group gpio >/dev/null || groupadd --system gpio
for g in video render input audio; do
    getent group "$g" >/dev/null || groupadd --system "$g"
done
id kiosk >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/kiosk --no-create-home --shell /usr/sbin/nologin kiosk
usermod -a -G gpio,video kiosk
id kiosk-display >/dev/null 2>&1 || useradd --system --user-group --home-dir /run/kiosk-display --no-create-home --shell /usr/sbin/nologin kiosk-display
usermod -a -G video,render,input,audio kiosk-display

chown kiosk:kiosk /var/lib/kiosk
chmod 0750 /var/lib/kiosk
chown root:kiosk /etc/kiosk /etc/kiosk/kiosk.toml
chmod 0750 /etc/kiosk
chmod 0640 /etc/kiosk/kiosk.toml
# Publisher keys (the units set storage.trust_dir here): root's, read-only to the box.
install -d -o root -g root -m 0755 /etc/kiosk/trust

# The kiosk in its own virtual environment, from the wheels host.sh brought in.
rm -rf /opt/kiosk
python3 -m venv /opt/kiosk
if [ "${KIOSK_OFFLINE:-0}" = "1" ]; then
    index=(--no-index)
else
    index=()
fi
/opt/kiosk/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "${index[@]}" \
    --find-links /var/cache/kiosk-wheels /var/cache/kiosk-wheels/field_kiosk-*.whl
rm -rf /var/cache/kiosk-wheels
/opt/kiosk/bin/kiosk --version

# Start at boot: data partition, setup from the boot drive, the box and its screens.
systemctl enable kiosk-data-partition.service kiosk-setup.service kiosk.service kiosk-display.service
# The screens own tty1.
systemctl disable getty@tty1.service 2>/dev/null || true
if [ -e /lib/systemd/system/fake-hwclock.service ]; then
    systemctl enable fake-hwclock.service
fi
