# %post of quickmeet: the system user, the data folder, then enable and start the service
# when systemd runs ($1 is 1 on install, 2 on upgrade).
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers quickmeet.conf
else
    getent group quickmeet >/dev/null || groupadd --system quickmeet
    getent passwd quickmeet >/dev/null || useradd --system --gid quickmeet \
        --home-dir /var/lib/quickmeet --no-create-home --shell /usr/sbin/nologin \
        --comment "Quick Meet daemon" quickmeet
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create quickmeet.conf || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now quickmeetd.service >/dev/null 2>&1 || :
    else
        systemctl try-restart quickmeetd.service >/dev/null 2>&1 || :
    fi
fi
