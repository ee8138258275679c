# The Debian package: `cpack -G DEB` in a build dir (see README.md, "Installing").
# A package for users comes from a build without the test suite (-DPW_BUILD_TESTS=OFF), which
# also leaves out the test-only hooks; a package made from a test build says so in its
# version (0.1.0~testhooks), so it cannot pass for a release.
set(CPACK_PACKAGE_NAME pw)
set(CPACK_PACKAGE_VENDOR "pw")
set(CPACK_PACKAGE_CONTACT "pw maintainers <pw-maintainers@users.noreply.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-project workspaces with a human and an agent posture")
set(CPACK_PACKAGE_DESCRIPTION
    "pw gives each project two sandboxes over the same directory, built from Linux
namespaces without setuid or root: a human posture (your shell, other projects and
cloud credentials hidden, an encrypted vault) and an agent posture for coding agents
(clean environment, private home, seccomp, a network allowlist through a logging
proxy, a filtered ssh-agent). fusevault, its encrypted FUSE filesystem, is included.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
if(PW_TEST_HOOKS)
  set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}~testhooks")
endif()
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)

set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends from what the binaries really link: dpkg-shlibdeps reads their NEEDED entries. By
# default (PW_STATIC_DEPS) libsodium, libseccomp, libfuse3 and libstdc++ are linked in, and
# that leaves libc6; a shared build gets their packages instead.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# pw itself mounts the vault inside its own user namespace with mount(2), never through
# fusermount3; only the standalone `fusevault mount`, run by an unprivileged user on the
# host, needs fuse3's setuid helper.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")

set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git" "/build[^/]*/" "/\\\\.cache/")
include(CPack)
