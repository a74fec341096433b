# %postun of quickmeet: RPM has no purge, so /var/lib/quickmeet (the data) is kept; remove
# it by hand to start over.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
