# %preun of quickmeet: on removal ($1 is 0, not an upgrade) stop and disable the service.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now quickmeetd.service >/dev/null 2>&1 || :
fi
