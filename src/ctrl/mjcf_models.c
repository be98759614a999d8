// ctrl/mjcf_models: the MJCF strings (see mjcf_models.h). Units: metres,
// kilograms (masses come from the geometry at MuJoCo's default density of
// 1000 kg/m^3; the cheetah is scaled to 14 kg in all, as Gymnasium's is).
//
// Hopper and walker: a torso capsule centred at height 1.25 on three root
// joints (slide x, slide z with ref 1.25 so qpos[1] is the height, hinge y),
// then thigh (0.45 long), leg (0.5) and foot, each body's frame at the joint
// that moves it. Hinge axes point along -y, so a positive angle bends the
// joint backwards, as in Gymnasium's files.
#include "ctrl/mjcf_models.h"

#include <string.h>

// Hopper (Gymnasium hopper.xml, used by hopper_v4.py with frame_skip 4):
// RK4 at 2 ms; all geoms collide with each other (contype = conaffinity = 1)
// with a soft contact (solimp .8 .8 .01, margin 1 mm); joints have armature 1
// and damping 1; motors of gear 200 on thigh, leg and foot.
static const char hopper_xml[] =
    "<mujoco model=\"rlhf_hopper\">\n"
    "  <compiler angle=\"degree\" inertiafromgeom=\"true\"/>\n"
    "  <option timestep=\"0.002\" integrator=\"RK4\"/>\n"
    "  <default>\n"
    "    <joint limited=\"true\" armature=\"1\" damping=\"1\"/>\n"
    "    <geom contype=\"1\" conaffinity=\"1\" condim=\"1\" margin=\"0.001\"\n"
    "          solref=\".02 1\" solimp=\".8 .8 .01\"/>\n"
    "    <motor ctrllimited=\"true\" ctrlrange=\"-1 1\" gear=\"200\"/>\n"
    "  </default>\n"
    "  <worldbody>\n"
    "    <geom name=\"ground\" type=\"plane\" size=\"20 20 .125\" condim=\"3\"/>\n"
    "    <body name=\"torso\" pos=\"0 0 1.25\">\n"
    "      <joint name=\"rootx\" type=\"slide\" axis=\"1 0 0\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <joint name=\"rootz\" type=\"slide\" axis=\"0 0 1\" ref=\"1.25\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <joint name=\"rooty\" type=\"hinge\" axis=\"0 1 0\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <geom name=\"torso\" type=\"capsule\" fromto=\"0 0 -.2 0 0 .2\" size=\".05\" friction=\".9\"/>\n"
    "      <body name=\"thigh\" pos=\"0 0 -.2\">\n"
    "        <joint name=\"thigh_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "        <geom name=\"thigh\" type=\"capsule\" fromto=\"0 0 -.45 0 0 0\" size=\".05\" friction=\".9\"/>\n"
    "        <body name=\"leg\" pos=\"0 0 -.45\">\n"
    "          <joint name=\"leg_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "          <geom name=\"leg\" type=\"capsule\" fromto=\"0 0 -.5 0 0 0\" size=\".04\"/>\n"
    "          <body name=\"foot\" pos=\"0 0 -.5\">\n"
    "            <joint name=\"foot_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-45 45\"/>\n"
    "            <geom name=\"foot\" type=\"capsule\" fromto=\".26 0 0 -.13 0 0\" size=\".06\" friction=\"2\"/>\n"
    "          </body>\n"
    "        </body>\n"
    "      </body>\n"
    "    </body>\n"
    "  </worldbody>\n"
    "  <actuator>\n"
    "    <motor name=\"thigh\" joint=\"thigh_joint\"/>\n"
    "    <motor name=\"leg\" joint=\"leg_joint\"/>\n"
    "    <motor name=\"foot\" joint=\"foot_joint\"/>\n"
    "  </actuator>\n"
    "</mujoco>\n";

// Walker2d (Gymnasium walker2d.xml, used by walker2d_v4.py with frame_skip 4):
// the hopper's torso and right leg with a 0.2 m foot, plus an identical left
// leg; only body-ground contacts (bodies have conaffinity 0); joints have
// armature 0.01 and damping 0.1; motors of gear 100. The left foot's friction
// is 1.9 against the right's 0.9, as in the v4 model (v5 made them equal).
static const char walker2d_xml[] =
    "<mujoco model=\"rlhf_walker2d\">\n"
    "  <compiler angle=\"degree\" inertiafromgeom=\"true\"/>\n"
    "  <option timestep=\"0.002\" integrator=\"RK4\"/>\n"
    "  <default>\n"
    "    <joint limited=\"true\" armature=\"0.01\" damping=\".1\"/>\n"
    "    <geom contype=\"1\" conaffinity=\"0\" condim=\"3\" density=\"1000\" friction=\".7 .1 .1\"/>\n"
    "    <motor ctrllimited=\"true\" ctrlrange=\"-1 1\" gear=\"100\"/>\n"
    "  </default>\n"
    "  <worldbody>\n"
    "    <geom name=\"ground\" type=\"plane\" size=\"40 40 40\" conaffinity=\"1\"/>\n"
    "    <body name=\"torso\" pos=\"0 0 1.25\">\n"
    "      <joint name=\"rootx\" type=\"slide\" axis=\"1 0 0\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <joint name=\"rootz\" type=\"slide\" axis=\"0 0 1\" ref=\"1.25\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <joint name=\"rooty\" type=\"hinge\" axis=\"0 1 0\" limited=\"false\" armature=\"0\" damping=\"0\"/>\n"
    "      <geom name=\"torso\" type=\"capsule\" fromto=\"0 0 -.2 0 0 .2\" size=\".05\" friction=\".9\"/>\n"
    "      <body name=\"thigh\" pos=\"0 0 -.2\">\n"
    "        <joint name=\"thigh_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "        <geom name=\"thigh\" type=\"capsule\" fromto=\"0 0 -.45 0 0 0\" size=\".05\" friction=\".9\"/>\n"
    "        <body name=\"leg\" pos=\"0 0 -.45\">\n"
    "          <joint name=\"leg_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "          <geom name=\"leg\" type=\"capsule\" fromto=\"0 0 -.5 0 0 0\" size=\".04\" friction=\".9\"/>\n"
    "          <body name=\"foot\" pos=\"0 0 -.5\">\n"
    "            <joint name=\"foot_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-45 45\"/>\n"
    "            <geom name=\"foot\" type=\"capsule\" fromto=\".2 0 0 0 0 0\" size=\".06\" friction=\".9\"/>\n"
    "          </body>\n"
    "        </body>\n"
    "      </body>\n"
    "      <body name=\"thigh_left\" pos=\"0 0 -.2\">\n"
    "        <joint name=\"thigh_left_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "        <geom name=\"thigh_left\" type=\"capsule\" fromto=\"0 0 -.45 0 0 0\" size=\".05\" friction=\".9\"/>\n"
    "        <body name=\"leg_left\" pos=\"0 0 -.45\">\n"
    "          <joint name=\"leg_left_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-150 0\"/>\n"
    "          <geom name=\"leg_left\" type=\"capsule\" fromto=\"0 0 -.5 0 0 0\" size=\".04\" friction=\".9\"/>\n"
    "          <body name=\"foot_left\" pos=\"0 0 -.5\">\n"
    "            <joint name=\"foot_left_joint\" type=\"hinge\" axis=\"0 -1 0\" range=\"-45 45\"/>\n"
    "            <geom name=\"foot_left\" type=\"capsule\" fromto=\".2 0 0 0 0 0\" size=\".06\" friction=\"1.9\"/>\n"
    "          </body>\n"
    "        </body>\n"
    "      </body>\n"
    "    </body>\n"
    "  </worldbody>\n"
    "  <actuator>\n"
    "    <motor name=\"thigh\" joint=\"thigh_joint\"/>\n"
    "    <motor name=\"leg\" joint=\"leg_joint\"/>\n"
    "    <motor name=\"foot\" joint=\"foot_joint\"/>\n"
    "    <motor name=\"thigh_left\" joint=\"thigh_left_joint\"/>\n"
    "    <motor name=\"leg_left\" joint=\"leg_left_joint\"/>\n"
    "    <motor name=\"foot_left\" joint=\"foot_left_joint\"/>\n"
    "  </actuator>\n"
    "</mujoco>\n";

// Half-cheetah (Gymnasium half_cheetah.xml, used by half_cheetah_v4.py with
// frame_skip 5): Euler at 10 ms (so one env step is 50 ms), a 1 m torso capsule
// with a head, back and front legs of three links each; every capsule has
// radius 0.046 and is placed by its centre and its tilt about y (radians);
// joints are springs (stiffness) with damping and armature 0.1; the whole
// body is scaled to 14 kg.
static const char halfcheetah_xml[] =
    "<mujoco model=\"rlhf_halfcheetah\">\n"
    "  <compiler angle=\"radian\" inertiafromgeom=\"true\" settotalmass=\"14\"/>\n"
    "  <size nstack=\"300000\"/>\n"
    "  <option timestep=\"0.01\" gravity=\"0 0 -9.81\"/>\n"
    "  <default>\n"
    "    <joint type=\"hinge\" axis=\"0 1 0\" limited=\"true\" armature=\".1\" damping=\".01\" stiffness=\"8\"\n"
    "           solreflimit=\".02 1\" solimplimit=\"0 .8 .03\"/>\n"
    "    <geom type=\"capsule\" contype=\"1\" conaffinity=\"0\" condim=\"3\" friction=\".4 .1 .1\"\n"
    "          solref=\".02 1\" solimp=\"0 .8 .01\" size=\".046\"/>\n"
    "    <motor ctrllimited=\"true\" ctrlrange=\"-1 1\"/>\n"
    "  </default>\n"
    "  <worldbody>\n"
    "    <geom name=\"ground\" type=\"plane\" size=\"40 40 40\" conaffinity=\"1\"/>\n"
    "    <body name=\"torso\" pos=\"0 0 .7\">\n"
    "      <joint name=\"rootx\" type=\"slide\" axis=\"1 0 0\" limited=\"false\" armature=\"0\" damping=\"0\" stiffness=\"0\"/>\n"
    "      <joint name=\"rootz\" type=\"slide\" axis=\"0 0 1\" limited=\"false\" armature=\"0\" damping=\"0\" stiffness=\"0\"/>\n"
    "      <joint name=\"rooty\" type=\"hinge\" axis=\"0 1 0\" limited=\"false\" armature=\"0\" damping=\"0\" stiffness=\"0\"/>\n"
    "      <geom name=\"torso\" fromto=\"-.5 0 0 .5 0 0\"/>\n"
    "      <geom name=\"head\" pos=\".6 0 .1\" axisangle=\"0 1 0 .87\" size=\".046 .15\"/>\n"
    "      <body name=\"bthigh\" pos=\"-.5 0 0\">\n"
    "        <joint name=\"bthigh\" range=\"-.52 1.05\" stiffness=\"240\" damping=\"6\"/>\n"
    "        <geom name=\"bthigh\" pos=\".1 0 -.13\" axisangle=\"0 1 0 -3.8\" size=\".046 .145\"/>\n"
    "        <body name=\"bshin\" pos=\".16 0 -.25\">\n"
    "          <joint name=\"bshin\" range=\"-.785 .785\" stiffness=\"180\" damping=\"4.5\"/>\n"
    "          <geom name=\"bshin\" pos=\"-.14 0 -.07\" axisangle=\"0 1 0 -2.03\" size=\".046 .15\"/>\n"
    "          <body name=\"bfoot\" pos=\"-.28 0 -.14\">\n"
    "            <joint name=\"bfoot\" range=\"-.4 .785\" stiffness=\"120\" damping=\"3\"/>\n"
    "            <geom name=\"bfoot\" pos=\".03 0 -.097\" axisangle=\"0 1 0 -.27\" size=\".046 .094\"/>\n"
    "          </body>\n"
    "        </body>\n"
    "      </body>\n"
    "      <body name=\"fthigh\" pos=\".5 0 0\">\n"
    "        <joint name=\"fthigh\" range=\"-1 .7\" stiffness=\"180\" damping=\"4.5\"/>\n"
    "        <geom name=\"fthigh\" pos=\"-.07 0 -.12\" axisangle=\"0 1 0 .52\" size=\".046 .133\"/>\n"
    "        <body name=\"fshin\" pos=\"-.14 0 -.24\">\n"
    "          <joint name=\"fshin\" range=\"-1.2 .87\" stiffness=\"120\" damping=\"3\"/>\n"
    "          <geom name=\"fshin\" pos=\".065 0 -.09\" axisangle=\"0 1 0 -.6\" size=\".046 .106\"/>\n"
    "          <body name=\"ffoot\" pos=\".13 0 -.18\">\n"
    "            <joint name=\"ffoot\" range=\"-.5 .5\" stiffness=\"60\" damping=\"1.5\"/>\n"
    "            <geom name=\"ffoot\" pos=\".045 0 -.07\" axisangle=\"0 1 0 -.6\" size=\".046 .07\"/>\n"
    "          </body>\n"
    "        </body>\n"
    "      </body>\n"
    "    </body>\n"
    "  </worldbody>\n"
    "  <actuator>\n"
    "    <motor name=\"bthigh\" joint=\"bthigh\" gear=\"120\"/>\n"
    "    <motor name=\"bshin\" joint=\"bshin\" gear=\"90\"/>\n"
    "    <motor name=\"bfoot\" joint=\"bfoot\" gear=\"60\"/>\n"
    "    <motor name=\"fthigh\" joint=\"fthigh\" gear=\"120\"/>\n"
    "    <motor name=\"fshin\" joint=\"fshin\" gear=\"60\"/>\n"
    "    <motor name=\"ffoot\" joint=\"ffoot\" gear=\"30\"/>\n"
    "  </actuator>\n"
    "</mujoco>\n";

const char *ctrl_mjcf_model(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "hopper")) return hopper_xml;
    if (!strcmp(name, "walker2d")) return walker2d_xml;
    if (!strcmp(name, "halfcheetah")) return halfcheetah_xml;
    return NULL;
}
