"""Map the repository's top-level folders into the `metalcubed` import package.

DESIGN.md fixes the top level (core/, controllers/, simulators/, scenarios/, ...); the import
names are `metalcubed.core`, `metalcubed.controllers`, ...: `metalcubed` itself is a namespace.
"""

from setuptools import find_namespace_packages, setup

ROOTS = ("cli", "core", "controllers", "simulators", "scenarios", "ramdisk")
packages = [
    f"metalcubed.{name}"
    for name in find_namespace_packages(include=[f"{root}*" for root in ROOTS])
    if "__pycache__" not in name
]
setup(
    packages=packages,
    package_dir={f"metalcubed.{root}": root for root in ROOTS},
    package_data={
        "metalcubed.scenarios": ["*.yaml", "profiles/*.yaml"],
        "metalcubed.core": ["py.typed"],
        "metalcubed.controllers": ["manifests/**/*"],
        "metalcubed.cli": ["py.typed"],
        "metalcubed.controllers.kube": ["build-kube.sh", "build-capi.sh", "build-helm.sh"],
        "metalcubed.ramdisk": ["files/*"],
    },
    include_package_data=True,
)
