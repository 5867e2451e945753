#!/usr/bin/env bash
# The photographs rendered people wear as prints and weave and stand in front of
# (`render-people --photos DIR`, docs/rendered-people.md): desktop wallpapers out of three
# Debian packages, photographs of nature, water, streets and things, and a few patterned
# textures. Each package's copyright file is copied beside its pictures (GNOME's: CC BY-SA 3.0;
# MATE's and KDE Plasma's: GPL-2+). Usage: benchmarks/photo_bank.sh OUT_DIR
set -euo pipefail
out=${1:?usage: benchmarks/photo_bank.sh OUT_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && { apt-get download -q gnome-backgrounds mate-backgrounds plasma-workspace-wallpapers \
    || { echo "apt-get download failed: run apt-get update first" >&2; exit 1; }; })
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
share="$work/root/usr/share"
mkdir -p "$out/gnome" "$out/mate" "$out/plasma"
for name in grid-d grid-l licorice-d licorice-l truchet-d truchet-l wood-d wood-l; do
    cp "$share/backgrounds/gnome/$name.webp" "$out/gnome/"
done
cp "$share/doc/gnome-backgrounds/copyright" "$out/gnome/COPYRIGHT"
for name in nature/Aqua nature/Blinds nature/Dune nature/FreshFlower nature/Garden nature/GreenMeadow \
    nature/LadyBird nature/RainDrops nature/Storm nature/TwoWings nature/Wood nature/YellowFlower \
    abstract/Elephants; do
    cp "$share/backgrounds/mate/$name.jpg" "$out/mate/"
done
cp "$share/doc/mate-backgrounds/copyright" "$out/mate/COPYRIGHT"
for name in Autumn BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite \
    OneStandsOut Path Shell Volna summer_1am; do
    # the 1920x1080 picture where there is one, else the largest (some ship a single size)
    images="$share/wallpapers/$name/contents/images"
    pick=$(ls "$images" | grep -x '1920x1080\.\(jpg\|png\)' || ls "$images" | sort -t x -k1,1n | tail -1)
    cp "$images/$pick" "$out/plasma/$name.${pick##*.}"
done
cp "$share/doc/plasma-workspace-wallpapers/copyright" "$out/plasma/COPYRIGHT"
echo "wrote $(find "$out" -name '*.jpg' -o -name '*.png' -o -name '*.webp' | wc -l) pictures to $out"
